"""Studies: presets that run clio_lite end to end for one question and return a k-supported table.

``clio_lite.studies.affective``: how people turn to a chatbot for emotional support, advice and company.
"""
