"""The TAMS operator: reconciles TamsStore, TamsWebhook and TamsDeletionRequest resources (Kopf)."""
