"""Sources: readers that turn every input format into the one records table.

PubMed efetch XML, MEDLINE text, RIS (Embase, Scopus, WoS, Ovid) and OpenAlex works all come out with
the columns of :mod:`reviewlib.records`.  ClinicalTrials.gov API v2 study JSON comes out as the
registry table (:mod:`.ctgov`, mapped onto the records table by ``registry_records``); :mod:`.links`
links publications to registrations by NCT id; :mod:`.ctgov_snapshot` builds the default review's
offline registry snapshot.
"""
