"""Analysis stages over existing artifacts: feature selection by effect size
(``select``), token associations between two text sets (``tokens``), artifact
audits before an analysis (``audit``), feature pathways and transition labels."""
