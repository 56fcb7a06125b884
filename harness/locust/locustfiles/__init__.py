"""Locustfiles shipped with meshconform, run by path (``meshconform load --locustfile canary|routes|retries``).

``meshconform_recording.py`` holds no users: it loads the recorder and the custom options, and
``meshconform load`` puts it before every locustfile, the user's own included.
"""
