"""Reports: read logged runs, write Markdown, CSV and PNG. A report never retrains."""
