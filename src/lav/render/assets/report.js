// lav report controls. One IIFE, no globals; data comes from the JSON block, never pasted into JS.
(function () {
  "use strict";
  var root = document.getElementById("lav-report");
  var dataNode = document.getElementById("lav-data");
  if (!root || !dataNode) { return; }
  var data = JSON.parse(dataNode.textContent);
  var size = data.image_size;

  // Layer switches act on every panel at once so panels stay comparable.
  Array.prototype.forEach.call(root.querySelectorAll("input[data-toggle]"), function (box) {
    var apply = function () { root.classList.toggle("hide-" + box.dataset.toggle, !box.checked); };
    box.addEventListener("change", apply);
    apply();
  });

  var slider = root.querySelector("input[data-opacity]");
  var shown = root.querySelector("[data-opacity-value]");
  if (slider) {
    var setOpacity = function () {
      root.style.setProperty("--map-opacity", String(slider.value / 100));
      if (shown) { shown.textContent = slider.value + "%"; }
    };
    slider.addEventListener("input", setOpacity);
    setOpacity();
  }

  // Pointer read-out in original-image pixels, the unit the model's click is reported in.
  Array.prototype.forEach.call(root.querySelectorAll(".stack"), function (stack) {
    var out = stack.parentNode.querySelector(".readout");
    if (!out) { return; }
    stack.addEventListener("mousemove", function (ev) {
      var box = stack.getBoundingClientRect();
      var x = (ev.clientX - box.left) / box.width * size[0];
      var y = (ev.clientY - box.top) / box.height * size[1];
      out.textContent = "x " + Math.round(x) + ", y " + Math.round(y) + " px";
    });
    stack.addEventListener("mouseleave", function () { out.textContent = ""; });
  });
})();
