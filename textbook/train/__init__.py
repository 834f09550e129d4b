"""Continual pretraining of a vision-language model on the exported corpus (no Airflow here).

``runs`` drives a run (resolve, prepare, train through ``accelerate launch``, publish); ``pretrain``
is the script the launcher starts; ``samples``, ``labels``, ``families`` and ``data`` turn OBELICS
samples into model inputs.
"""
