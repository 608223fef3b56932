"""Integration kinds and providers; no I/O."""
from enum import StrEnum


class IntegrationType(StrEnum):
    DELIVERY = "delivery"
    ACCOUNTING = "accounting"
    POS = "pos"


PROVIDERS = {
    "doordash": ("DoorDash", IntegrationType.DELIVERY),
    "ubereats": ("Uber Eats", IntegrationType.DELIVERY),
    "grubhub": ("Grubhub", IntegrationType.DELIVERY),
    "quickbooks": ("QuickBooks", IntegrationType.ACCOUNTING),
    "xero": ("Xero", IntegrationType.ACCOUNTING),
}
