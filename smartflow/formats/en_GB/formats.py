"""Output formats for en-gb (FORMAT_MODULE_PATH): dates in one format everywhere
Django formats them itself (the admin's lists, read-only fields and inlines), the same
as the back-office's own templates write them ("Y-m-d H:i"). Input formats and
the rest are Django's en_GB ones (looked up there when missing here)."""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
