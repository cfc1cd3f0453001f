"""dyntools: see how a neural network's training unfolded, from the checkpoints it left behind.

Importing this package imports neither streamlit nor torch; the submodules that need them
import them themselves.
"""

__version__ = "0.1.0"
