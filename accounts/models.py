"""The user: one model for customers, marketers, executives and staff. Email is the login."""

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class User(AbstractUser):
    username = None
    email = models.EmailField(_("email address"), unique=True)
    country = models.CharField(_("country"), max_length=2, blank=True, help_text=_("ISO 3166-1 alpha-2"))
    preferred_language = models.CharField(_("language"), max_length=8, blank=True)
    # Lower case, and for Gmail without dots and +tags: how one person is recognised across
    # addresses (offers.rules.canonical_email). Kept in step with ``email`` by ``save``.
    canonical_email = models.CharField(max_length=254, blank=True, db_index=True, editable=False)
    # The customer's id in another system (a shop, a till), from history imports.
    external_id = models.CharField(_("external id"), max_length=255, null=True, blank=True, unique=True)
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True, editable=False)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        constraints = [
            # Two accounts for Ann@x and ann@x would split one customer in two.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self):
        return self.email

    def save(self, *args, **kwargs):
        from offers.rules import canonical_email

        self.canonical_email = canonical_email(self.email)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, "canonical_email"}
        super().save(*args, **kwargs)
