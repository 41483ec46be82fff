from __future__ import annotations

from typing import Any, ClassVar

from django import forms


class CardForm(forms.Form):
    card_number = forms.CharField(
        label="Card number",
        max_length=32,
        widget=forms.TextInput(
            attrs={
                "inputmode": "numeric",
                "autocomplete": "cc-number",
                "placeholder": "4242 4242 4242 4242",
            }
        ),
    )


class BankDebitForm(forms.Form):
    """Bacs Direct Debit details (the sandbox's test account numbers)."""

    sort_code = forms.CharField(
        label="Sort code",
        max_length=16,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "placeholder": "10-88-00"}),
    )
    account_number = forms.CharField(
        label="Account number",
        max_length=16,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "placeholder": "00012345"}),
    )


class PortalActionForm(forms.Form):
    """One action on a subscription; which ones a session allows is its configuration's
    business (devtools/stripe_sandbox/views.py)."""

    ACTIONS: ClassVar[list[tuple[str, str]]] = [
        ("cancel_now", "Cancel now"),
        ("cancel_at_period_end", "Cancel at period end"),
        ("renew", "Don't cancel"),
        ("switch", "Switch plan (see the amount)"),
        ("switch_confirm", "Confirm the switch"),
    ]

    action = forms.ChoiceField(choices=ACTIONS)
    subscription = forms.CharField(max_length=255)
    price = forms.CharField(max_length=255, required=False)
    reason = forms.CharField(max_length=64, required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("action") in ("switch", "switch_confirm") and not data.get("price"):
            self.add_error("price", "Choose the plan to switch to.")
        return data


class CheckoutExtrasForm(forms.Form):
    """What Checkout asks beside the card: a promotion code (when the session allows
    them), the billing address country and a VAT number (when tax is collected)."""

    promotion_code = forms.CharField(label="Promotion code", max_length=64, required=False)
    country = forms.ChoiceField(label="Billing address country", required=False, choices=())
    tax_id = forms.CharField(
        label="VAT number (businesses, optional)", max_length=32, required=False
    )

    def __init__(
        self, *args: Any, countries: tuple[tuple[str, str], ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        country = self.fields["country"]
        assert isinstance(country, forms.ChoiceField)  # declared so above
        country.choices = [("", "Choose…"), *countries]
