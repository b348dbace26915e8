"""The report: plain functions over the cells' metrics.json records, testable on made-up cells. cells.py is the leaf
(constants, record helpers); paper.py the paper's numbers; pivot.py the one pivot; markdown.py the one renderer;
tables.py and plots.py on top."""
