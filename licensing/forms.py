from django import forms


class ActivateForm(forms.Form):
    """The license string received for one node; empty means "activate the one stored already"."""

    license = forms.CharField(
        required=False, max_length=20000, strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false",
                                     "placeholder": "Paste the license string received for this node"}),
    )

    def __init__(self, *args, has_stored: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.has_stored = has_stored

    def clean_license(self):
        text = self.cleaned_data["license"]
        if not text and not self.has_stored:
            raise forms.ValidationError("Paste the license string received for this node.")
        if "\x00" in text:
            raise forms.ValidationError("The license contains a NUL character: paste it as text.")
        return text
