"""The weekly call list: kept as the entry point the weekly task imports.

The work lives in :mod:`retention_pipeline.outreach` (campaign selection, sinks, ledger).
"""

from __future__ import annotations

from retention_pipeline.outreach.files import call_list_path
from retention_pipeline.outreach.push import push_weekly_call_list

__all__ = ["call_list_path", "push_weekly_call_list"]
