"""The retrieval web server (:mod:`dcinet.serve.app`) and its page (``static/``)."""
