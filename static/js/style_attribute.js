// Loaded before plotly.min.js on the dashboards. plotly.js (through d3) sets some styles with
// setAttribute("style", ...), which a Content-Security-Policy without 'unsafe-inline' in
// style-src refuses. The same declarations set through the CSSOM (element.style.cssText) are
// allowed, so a style attribute is routed there; every other attribute is untouched.
(function () {
  "use strict";
  var setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (name, value) {
    if (typeof name === "string" && name.toLowerCase() === "style" && this.style) {
      this.style.cssText = String(value);
      return;
    }
    return setAttribute.call(this, name, value);
  };
})();
