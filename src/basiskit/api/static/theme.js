// The page's theme before anything is drawn (no flash): the one picked last, else the system's.
document.documentElement.dataset.theme = localStorage.getItem("basiskit-theme")
  || (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
