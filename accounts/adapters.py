"""allauth, the house way: its mail goes through the outbox, and a login lands where each role
works."""

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.contrib.sites.shortcuts import get_current_site
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from accounts.emails import email_queue
from accounts.languages import supported, user_language, user_language_set
from accounts.models import OutboxPurpose, User
from accounts.roles import EXECUTIVE, MARKETER, user_roles

# Every email allauth 65 can send, by template, and why it is sent. tests/accounts/test_emails.py
# fails when allauth ships a template that is not here, so a new kind of mail gets a purpose.
PURPOSES = {
    "account/email/email_confirmation": OutboxPurpose.VERIFICATION,
    "account/email/email_confirmation_signup": OutboxPurpose.VERIFICATION,
    "account/email/email_confirm": OutboxPurpose.VERIFICATION,
    "account/email/password_reset_key": OutboxPurpose.PASSWORD_RESET,
    "account/email/password_reset_code": OutboxPurpose.PASSWORD_RESET,
    "account/email/account_already_exists": OutboxPurpose.ACCOUNT_EXISTS,
    "account/email/unknown_account": OutboxPurpose.UNKNOWN_ACCOUNT,
    "account/email/login_code": OutboxPurpose.LOGIN_CODE,
    "account/email/password_changed": OutboxPurpose.ACCOUNT_NOTICE,
    "account/email/password_set": OutboxPurpose.ACCOUNT_NOTICE,
    "account/email/password_reset": OutboxPurpose.ACCOUNT_NOTICE,
    "account/email/email_changed": OutboxPurpose.ACCOUNT_NOTICE,
    "account/email/email_deleted": OutboxPurpose.ACCOUNT_NOTICE,
}


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        request = allauth_context.request
        # The same context allauth's own send_mail builds; without current_site the emails
        # said "Hello from !".
        ctx = {"request": request, "email": email, "current_site": get_current_site(request), **context}
        user = context.get("user")
        if not isinstance(user, User):
            user = User.objects.filter(email__iexact=email).first()
        # In the account's language (a password reset asked for from another browser too), else
        # the one this page is in; the outbox records which.
        language = user_language(user)
        with translation.override(language):
            message = self.render_mail(template_prefix, email, ctx)
        html = next((body for body, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), "")
        for address in message.to:
            email_queue(
                to=address,
                subject=message.subject,
                text=message.body,
                html=html,
                from_email=message.from_email,
                purpose=PURPOSES.get(template_prefix, OutboxPurpose.ACCOUNT_NOTICE),
                user=user,
                language=language,
            )

    def save_user(self, request, user, form, commit=True):
        # A new account keeps the language it was opened in, so that mail written later without
        # a request (reminders, receipts) is in it too. The switcher changes it afterwards.
        user.preferred_language = user.preferred_language or supported(translation.get_language() or "")
        user.signed_up_from = _local_next(request)
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            # A new account is not logged in until its email is verified, maybe on another
            # device without this cookie: the arm this visitor saw becomes the account's now.
            _join_visitor(request, user)
        return user

    def login(self, request, user):
        # Every login joins the visitor's anonymous assignments (their cookie id) to the account
        # before the redirect back to the offer, and gives an account without a language the one
        # this visitor chose before logging in.
        super().login(request, user)
        _join_visitor(request, user)
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        if not user.preferred_language and chosen:
            user_language_set(user=user, language=chosen)

    def get_email_verification_redirect_url(self, email_address):
        # Only asked when the link was opened without the signup's session (in the same browser
        # allauth resumes the signup and its ``next``): another device goes back to the offer,
        # through the login page when it is not logged in there.
        back = email_address.user.signed_up_from
        if not back:
            return super().get_email_verification_redirect_url(email_address)
        if self.request.user.is_authenticated:
            return back
        return f"{reverse(settings.LOGIN_URL)}?{urlencode({'next': back})}"

    def get_signup_redirect_url(self, request):
        return self.get_login_redirect_url(request)

    def get_login_redirect_url(self, request):
        # Only used when the login carries no safe ``next`` (allauth prefers that): where each
        # role works. Staff operators go to the console too: it is where products and offers
        # are run, and it links to nothing they may not open.
        user = request.user
        roles = user_roles(user)
        if user.is_staff or MARKETER in roles:
            return reverse("console:home")
        if EXECUTIVE in roles:
            return reverse("dashboard:home")
        return reverse("me")


def _local_next(request) -> str:
    """The request's ``next`` if it is a page of this site given by its path, else ""."""
    url = request.POST.get("next") or request.GET.get("next") or ""
    return url if url.startswith("/") and url_has_allowed_host_and_scheme(url, allowed_hosts=None) else ""


def _join_visitor(request, user) -> None:
    from offers.views import visitor_id  # the cookie belongs to the public pages
    from trials.services import assignments_join

    visitor = visitor_id(request)
    if visitor:
        assignments_join(customer=user, visitor=visitor)
