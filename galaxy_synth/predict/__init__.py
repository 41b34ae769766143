"""Predict, after export: an exported model folder run on images or a whole survey catalogue (``galaxy-synth predict``).

Modules: :mod:`.model_folder` (the card, architecture and preprocessing, read without torch),
:mod:`.network` (the torch network loaded from it, its inputs and probabilities), :mod:`.onnx_engine`
(the same probabilities from ``model.onnx`` in ONNX Runtime, no torch), :mod:`.catalogue_rows` (what a
run classifies: paths, carried columns, extra inputs), :mod:`.catalogue` (streaming inference in
chunks: a decode pool started before the network loads, or Dask; engine and precision; resume),
:mod:`.chunk_writers` (CSV with a journal, Parquet parts, the ``.npy`` parts folder), :mod:`.fits_writer` (a FITS table assembled from
parts), :mod:`.output_formats` (which writer ``-o`` names), :mod:`.embeddings` (``--embeddings``: each galaxy's
pooled features), :mod:`.uncertainty` (``predictive_entropy``, an ensemble's ``mutual_information``, ``reliable``
against the card's threshold or ``--target-error``), :mod:`.input_domain` (``domain_z``: how unlike the training images), :mod:`.votes` (a vote model's
``{question}_{answer}_fraction`` / ``_dirichlet`` columns), :mod:`.settings`
(:class:`PredictSettings`: one run's request) and :mod:`.command` (its command line, the run a request starts, and
its printout).

The names below load their module on first use: what runs before the weights load (the folder's
card, the rows, the decode task) stays torch-free, and so does importing this package.
"""

import lazy_loader

_HOMES = {
    "catalogue": ("classify_catalogue", "predict_files", "inference_settings", "CatalogueSummary"),
    "catalogue_rows": ("rows_from_catalogue", "rows_from_files", "CatalogueRows"),
    "model_folder": ("read_model_folder", "ModelFolder", "MODEL_FILES"),
    "network": ("load_model_dir", "LoadedModel", "predict_concentrations", "predict_probabilities", "read_inputs"),
    "votes": ("add_vote_columns", "vote_columns"),
    "onnx_engine": ("OnnxModel",),
    "chunk_writers": ("CsvChunkWriter", "ParquetChunkWriter", "PartsFolder"),
    "fits_writer": ("FitsChunkWriter", "read_fits_table"),
    "output_formats": ("output_format", "open_writer", "read_output", "embeddings_path"),
    "embeddings": ("embedding_engine", "classify_and_embed"),
    "uncertainty": ("reliability_threshold", "combine_member_views", "uncertainty_columns", "add_reliable"),
    "input_domain": ("training_domain", "domain_scores", "image_statistics"),
    "command": ("add_predict_parser", "cmd_predict", "run_predict"),
    "settings": ("PredictSettings",),
}
__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs=_HOMES)
