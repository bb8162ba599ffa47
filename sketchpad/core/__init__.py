"""The torch-free, Qt-free core both backends, the command line and the window share: the request
(`params`), the denoise/start-at-step math (`schedule`), errors, input pictures and saving."""
