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
