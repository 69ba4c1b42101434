// Progressive enhancement only: every page works without it.
// A form marked data-autosubmit is sent at once (logout's POST to Suomi.fi); without JavaScript its button sends it.
// A field marked data-reveal-when="name=value" is shown only while the radio group `name` has `value` checked
// (the interpreter's language while an interpreter is needed). Without JavaScript the field simply stays visible.
(function () {
  "use strict";
  function update(field, name, value) {
    var checked = document.querySelector('input[name="' + name + '"]:checked');
    field.hidden = !(checked && checked.value === value);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
      form.submit();
    });
    document.querySelectorAll("[data-reveal-when]").forEach(function (field) {
      var parts = field.getAttribute("data-reveal-when").split("=");
      var name = parts[0];
      var value = parts[1];
      document.querySelectorAll('input[name="' + name + '"]').forEach(function (radio) {
        radio.addEventListener("change", function () {
          update(field, name, value);
        });
      });
      if (!field.classList.contains("field--error")) {
        update(field, name, value);
      }
    });
  });
})();
