"""The retrieval web server (:mod:`dcinet.app.serve.app`) and its page (``static/``)."""
