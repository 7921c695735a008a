"""placeholder"""
def read_medline(path): raise NotImplementedError
def read_ris(path): raise NotImplementedError
