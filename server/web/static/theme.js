/* Follow the system's light or dark setting before the first paint (loaded in <head>, not a module). */
(function () {
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)");
  function apply() { document.documentElement.setAttribute("data-bs-theme", dark && dark.matches ? "dark" : "light"); }
  apply();
  if (dark && dark.addEventListener) dark.addEventListener("change", apply);
})();
