"""Pictures of a dataset: aligned feature panels (PNG via matplotlib, HTML via plotly) and the quality page."""
