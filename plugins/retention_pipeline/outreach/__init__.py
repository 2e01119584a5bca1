"""Call lists to outreach tools, with a measured effect.

selection.py decides the campaign (who is called, held out, excluded and why; script
variant; offer), push.py delivers it to the configured sinks through the
``ops.outreach_pushes`` ledger, and the dbt mart ``rpt_campaign_results`` measures it.
"""
