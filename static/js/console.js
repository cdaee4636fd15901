// Centralized Management: in a mode whose level inherits the page's feature, the settings are shown as
// that level runs them, not edited (the server refuses such a change as well). The forms that change
// something are disabled; searches, links, the forms that only read (data-no-change: Test TLS, Export)
// and the mode selector's own forms stay usable.
htmx.onLoad((content) => {
  const forms = content.matches("form") ? [content] : content.querySelectorAll("form");
  for (const form of forms) {
    const changes = form.method.toLowerCase() === "post" && !form.hasAttribute("data-no-change");
    if (!changes || !form.closest("main[data-inherited]") || form.closest("#mode-bar")) continue;
    for (const control of form.elements) control.disabled = true;
    form.classList.add("inherited");
  }
});

// The Content-Security-Policy allows no inline script: what templates once said in on…= handlers is here.

// A form or a submit button with data-confirm asks before it is sent (before htmx sees the submit too).
document.addEventListener(
  "submit",
  (event) => {
    const question = event.submitter?.dataset.confirm ?? event.target.dataset.confirm;
    if (question && !confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true,
);

// A field's inline check is swapped in only if the field still holds the value checked (_field.html).
document.addEventListener("htmx:beforeSwap", (event) => {
  const name = event.target.dataset?.checkedField;
  if (!name) return;
  const now = new FormData(event.target.closest("form")).getAll(name).join();
  if (now !== event.detail.requestConfig.formData.getAll(name).join()) event.detail.shouldSwap = false;
});
