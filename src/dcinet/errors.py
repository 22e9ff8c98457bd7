"""The one exception type for mistakes a user can fix (bad file, bad config, bad option).

The command line prints ``error: <message>`` and exits with :data:`USER_ERROR_EXIT` instead of a
traceback; the library raises it so that callers can catch it.
"""

USER_ERROR_EXIT = 2


class DcinetError(Exception):
    """A user-fixable problem; the message names the thing (file, key, line) that is wrong."""
