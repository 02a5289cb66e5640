"""CSV: typing from the whole file (`infer`), the typed read (`reader`), error location (`diagnose`)."""
