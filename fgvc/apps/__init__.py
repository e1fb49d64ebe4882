"""What users run: the command line, the web demo, figures, the audit of a folder, benchmarks.

    cli               ``fgvc`` and its subcommands (a package: the shared flags, one module per group of commands)
    predict_output    ``fgvc predict``: the result of each file, as text, JSON or CSV
    banner            which files have FGVC-Aircraft's banner to cut, decided once per file
    serve             ``fgvc serve``: the Gradio page over ``Predictor`` and Grad-CAM
    cam_examples      which images of a split to explain (right, wrong, the most-confused pairs)
    cam_files         ``fgvc gradcam``'s files: one overlay PNG per image
    figures           the README's figures and the cover, from a run folder
    audit             ``fgvc audit``: what is wrong with a data set, from
    audit_photos      the photos it reads,
    audit_embeddings  their pretrained features,
    audit_copies      copies across splits and under two labels, and
    audit_labels      doubtful labels (cleanlab); written by
    audit_report      ``audit.md``, ``audit.html``, ``audit.json`` and the exclusion list
    benchmarks        ``fgvc bench``: images/s against a baseline measured in the same run; the GPU scripts
"""
