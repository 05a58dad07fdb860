"""The desktop GUI (PySide6 widgets). Qt appears nowhere below this package."""
