"""Take the docs' screenshots from the real plugin (run under Xvfb: `xvfb-run -a`).

xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py docs/images
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out_dir: str = "docs/images") -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-cellseg")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open_sample("napari-cellseg", "c_histology_1")
    viewer.window.add_plugin_dock_widget("napari-cellseg", "Segment")
    viewer.window.add_plugin_dock_widget("napari-cellseg", "Annotate", tabify=True)
    for _ in range(20):
        QApplication.processEvents()
    viewer.window.screenshot(str(out / "plugin-docked.png"), canvas_only=False)
    print(f"wrote {out / 'plugin-docked.png'}")
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
