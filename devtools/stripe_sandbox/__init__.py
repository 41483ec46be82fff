"""An offline stand-in for Stripe's API, installed as stripe-python's HTTP client when
settings.STRIPE_SANDBOX is on. See devtools/stripe_sandbox/README.md."""
