"""The logic behind the dock widgets, without Qt or napari.

One module per panel or shared concern: ``annotation`` (layers <-> dataset),
``dataset_tools`` (check, split, augmentation preview), ``finetune_session``
and ``finetune_estimate`` (training in a separate process, time estimates),
``m2_info`` (an M2's depth), ``segment_session`` (one-click segmentation),
``review`` (compare, evaluate) and ``current_model`` (the model Segment uses,
kept across restarts). The widgets in ``napari_cellseg._qt`` collect
parameters, start these functions in workers and show the results; the
functions are tested without a viewer.
"""
