"""The app's pages, one Streamlit script each (Streamlit runs them; they are not imported).

Not in a folder named ``pages``: a ``pages`` folder next to the main script makes Streamlit
announce its files as pages to a new browser before the router has run, and a link to
``/hook-points`` on a freshly started server then met a "Page not found" dialog.
"""
