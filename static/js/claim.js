// The claim's card step (templates/trials/claim_card.html and claim_authenticate.html), and the
// payment page of a failed end step (templates/trials/pay.html). Loaded
// as a static file because the CSP allows no inline script; the key and the client secret come
// from the form's data- attributes. "setup": mount the card element, confirmCardSetup, then post
// the form. "payment": the bank asks for 3-D Secure, confirmCardPayment, then post the form.
(function () {
  "use strict";
  var form = document.getElementById("claim-card");
  if (!form || typeof Stripe === "undefined") {
    return;
  }
  var stripe = Stripe(form.dataset.stripeKey);
  var secret = form.dataset.clientSecret;
  var errors = document.getElementById("card-errors");
  var button = form.querySelector("button[type=submit]");
  var card = null;
  if (form.dataset.mode === "setup") {
    card = stripe.elements().create("card");
    card.mount("#card-element");
  }
  var done = false;

  function failed(message) {
    errors.textContent = message;
    button.disabled = false;
  }

  form.addEventListener("submit", function (event) {
    if (done) {
      return; // the card is saved: let the form post
    }
    event.preventDefault();
    button.disabled = true; // a second click does not start a second confirmation
    errors.textContent = "";
    var step = card
      ? stripe.confirmCardSetup(secret, { payment_method: { card: card } })
      : stripe.confirmCardPayment(secret);
    step.then(function (result) {
      if (result.error) {
        failed(result.error.message);
        return;
      }
      done = true;
      form.submit();
    }, function (error) {
      failed(String(error));
    });
  });
})();
