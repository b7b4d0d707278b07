from allauth.account.adapter import DefaultAccountAdapter

from accounts.emails import email_queue


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix, email, context):
        message = self.render_mail(template_prefix, email, context)
        html = next((body for body, mimetype in getattr(message, "alternatives", []) if mimetype == "text/html"), None)
        email_queue(
            to=list(message.to),
            subject=message.subject,
            text=message.body,
            html=html,
            from_email=message.from_email,
        )
