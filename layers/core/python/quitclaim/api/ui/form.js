// The optional drawn signature: the form works without this script (typed name).
(function () {
  "use strict";
  var box = document.querySelector(".draw");
  var canvas = document.getElementById("drawn");
  var field = document.getElementById("signature_drawing");
  var clear = document.getElementById("clear-drawing");
  if (!box || !canvas || !field || !canvas.getContext) return;
  box.hidden = false;
  var ctx = canvas.getContext("2d");
  ctx.lineWidth = 2;
  ctx.lineCap = "round";
  var drawing = false;
  var drawn = false;
  function at(event) {
    var r = canvas.getBoundingClientRect();
    return [(event.clientX - r.left) * canvas.width / r.width,
            (event.clientY - r.top) * canvas.height / r.height];
  }
  canvas.addEventListener("pointerdown", function (event) {
    drawing = true;
    var p = at(event);
    ctx.beginPath();
    ctx.moveTo(p[0], p[1]);
  });
  canvas.addEventListener("pointermove", function (event) {
    if (!drawing) return;
    var p = at(event);
    ctx.lineTo(p[0], p[1]);
    ctx.stroke();
    drawn = true;
  });
  window.addEventListener("pointerup", function () { drawing = false; });
  clear.addEventListener("click", function () {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    drawn = false;
    field.value = "";
  });
  canvas.closest("form").addEventListener("submit", function () {
    field.value = drawn ? canvas.toDataURL("image/png") : "";
  });
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
