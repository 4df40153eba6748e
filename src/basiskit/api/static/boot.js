// Before anything is drawn: the page's theme (no flash: the one picked last, else the system's). plotly.js (4.8 MB)
// is run only when a page first draws a chart (loadPlotly), so tables never wait while the browser compiles it;
// a page with charts fetches it ahead (preloadPlotly) while its own data loads.
document.documentElement.dataset.theme = localStorage.getItem("basiskit-theme")
  || (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
const PLOTLY_SRC = "/static/plotly.min.js";
let plotlyLoading = null;
window.loadPlotly = () => plotlyLoading ||= new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = PLOTLY_SRC;
  script.onload = resolve;
  script.onerror = () => reject(new Error(`plotly.js could not be loaded from ${PLOTLY_SRC}`));
  document.head.append(script);
});
window.preloadPlotly = () => {
  if (document.querySelector(`link[href="${PLOTLY_SRC}"]`)) return;
  document.head.append(Object.assign(document.createElement("link"), { rel: "preload", as: "script", href: PLOTLY_SRC }));
};
