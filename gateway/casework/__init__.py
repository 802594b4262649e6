"""The console of court officers and judges: cases, asset reports, freezes proposed from the report, follow-up lists and the approval queue."""
