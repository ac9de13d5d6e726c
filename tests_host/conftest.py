import mpcompat

mpcompat.install()
