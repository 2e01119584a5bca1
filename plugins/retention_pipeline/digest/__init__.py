"""The weekly customer digest: marts -> numbers and pictures -> one email per ISO week.

The flow is ``data.load_digest_data`` -> ``render.render_digest`` ->
``message.build_message`` -> ``delivery.send_digest`` (and ``delivery.write_outbox``
for a copy on disk). Each step is a separate module so a task can stop after any of
them (a dry run writes the outbox and sends nothing). Nothing is imported here on
purpose: DAG files may import this package at parse time.
"""
