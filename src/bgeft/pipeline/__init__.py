"""The parts of ``bgeft pipeline`` (the command itself is ``bgeft.cli.pipeline``):

* ``yamlfile`` / ``spec`` - the pipeline file: keys with their lines, overrides, validation;
* ``resources`` - recipes (shipped names, paths); models resolve in ``bgeft.models.resolve``;
* ``graph`` - the numbered stage instances with their inputs, rounds included;
* ``state`` / ``runner`` - content hashes, stage manifests, the run / resume / skip decision;
* ``text_stages``, ``model_stages``, ``eval_stage``, ``report`` - what each stage does.
"""
