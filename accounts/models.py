"""The user (one model for customers, marketers, executives and staff; email is the login) and
the outbox record of every message sent to someone."""

from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.contrib.contenttypes.fields import GenericForeignKey
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
    # The local page the account was opened from (the signup's ``next``, e.g. an offer), so that a
    # verification link opened on another device, without the signup's session, leads back there.
    signed_up_from = models.CharField(max_length=2000, blank=True, editable=False)

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


class OutboxPurpose(models.TextChoices):
    """Why a message was sent. Reminders, receipts and the "emails we sent you" list group by it."""

    VERIFICATION = "verification", _("email verification")
    PASSWORD_RESET = "password_reset", _("password reset")
    ACCOUNT_EXISTS = "account_exists", _("account already exists")
    UNKNOWN_ACCOUNT = "unknown_account", _("no account for this address")
    LOGIN_CODE = "login_code", _("login code")
    ACCOUNT_NOTICE = "account_notice", _("account change notice")
    REMINDER = "reminder", _("reminder")
    RECEIPT = "receipt", _("receipt")
    PAYMENT_ACTION = "payment_action", _("payment needs action")
    CANCELLATION = "cancellation", _("cancellation confirmed")
    TRIAL_ENDED = "trial_ended", _("trial ended, invitation to buy")
    SURVEY = "survey", _("feedback survey")
    APOLOGY = "apology", _("answer to feedback")


class OutboxMessage(models.Model):
    """What we know about one outgoing message beyond its envelope and body.

    The envelope, the bodies, the queue status and the log of attempts live in django-post-office's
    ``Email`` (one-to-one, ``email``); this record adds what it has no field for: who it is for,
    why, in which language, what it is about, and when it was due and sent. See accounts/emails.py.
    """

    # PROTECT: post_office's cleanup_mail deletes old Email rows; this history ("emails we sent
    # you", "Promises kept") must not disappear with them unnoticed.
    email = models.OneToOneField("post_office.Email", on_delete=models.PROTECT, related_name="outbox")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox_messages", verbose_name=_("user")
    )
    address = models.EmailField(_("address"), max_length=254)
    purpose = models.CharField(_("purpose"), max_length=32, choices=OutboxPurpose.choices)
    language = models.CharField(_("language"), max_length=8)
    about_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    about_id = models.PositiveBigIntegerField(null=True, blank=True)
    about = GenericForeignKey("about_type", "about_id")
    # Optional idempotency key ("reminder:trial:42:7"): the unique constraint makes queueing the
    # same message twice impossible, however many processes try.
    key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(_("created"))
    due_at = models.DateTimeField(_("due"))
    # The moment the terms promised this message for (a reminder's "7 days before the end"), when
    # there is one. ``due_at`` is when it was queued, which the clock may do a little early (or,
    # when it was down, late), so "Promises kept" compares ``sent_at`` with this instead.
    promised_at = models.DateTimeField(_("promised for"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Set while a sender holds the message (between its claim and the record of the result); a
    # claim found still set later means that sender died mid-send (accounts.emails.outbox_send).
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        indexes = [
            models.Index(fields=["user", "-due_at"], name="outbox_user_due"),
            models.Index(fields=["about_type", "about_id", "purpose"], name="outbox_about"),
            models.Index(fields=["purpose", "due_at"], name="outbox_purpose_due"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(about_type__isnull=True, about_id__isnull=True)
                | models.Q(about_type__isnull=False, about_id__isnull=False),
                name="outbox_about_type_and_id_together",
            ),
            models.CheckConstraint(
                condition=models.Q(sent_at__isnull=True) | models.Q(claimed_at__isnull=True),
                name="outbox_sent_is_not_claimed",
            ),
        ]

    def __str__(self):
        return f"{self.purpose} to {self.address}"
