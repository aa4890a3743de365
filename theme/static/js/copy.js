// Progressive enhancement: a "Copy" button beside each checksum. Without JavaScript the
// checksum is still selected whole with one click (CSS user-select: all).
document.querySelectorAll("code.sha").forEach(function (code) {
  if (!navigator.clipboard) return;
  var button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy SHA-256 checksum");
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(code.textContent).then(function () {
      button.textContent = "Copied";
    });
  });
  code.after(button);
});
