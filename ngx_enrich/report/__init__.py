"""`ngx-enrich report`: what is wrong in a log, in one page.

Data flows one way: lines are read and enriched as the filter does (`command`; a large file
split between worker processes by `parallel`), the enriched records are counted in constant
memory (`collect`, with `timeline`, `topn`, `histogram`), the counts become one summary
dict (`collect.Collector.summary`), and that dict is rendered as JSON, text, Markdown or
HTML (`render_json`, `render_text`, `render_markdown`, `render_html`).
"""
