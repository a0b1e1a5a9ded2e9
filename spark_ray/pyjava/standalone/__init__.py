"""A folder to put on ``sys.path`` (``PYTHONPATH``) so that a plain ``python file.py`` imports the shim as ``pyjava``.

See ``spark_ray.pyjava.standalone_path``. Nothing here is imported by spark-ray itself.
"""
