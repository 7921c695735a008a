"""Sources: readers that turn every input format into the one records table.

PubMed efetch XML, MEDLINE text, RIS (Embase, Scopus, WoS, Ovid) and OpenAlex works all come out with
the columns of :mod:`reviewlib.records`.
"""
