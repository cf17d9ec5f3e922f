// Redaction boxes drawn on a clip's picture: drag to draw, click a box to remove it.
// Each box is written to the form's textarea as "x,y,w,h" in fractions of the frame.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const area = document.getElementById("box-canvas");
  const text = document.getElementById("boxes");
  if (!area || !text) return;
  let start = null;
  let drawing = null;

  const fraction = (event) => {
    const r = area.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (event.clientX - r.left) / r.width)),
            Math.min(1, Math.max(0, (event.clientY - r.top) / r.height))];
  };
  const place = (el, [x, y, w, h]) => Object.assign(el.style, {
    left: `${x * 100}%`, top: `${y * 100}%`, width: `${w * 100}%`, height: `${h * 100}%`,
  });
  const write = () => {
    text.value = [...area.querySelectorAll(".box")]
      .map((b) => b.dataset.box).join("\n");
  };

  // Boxes saved before (the doorstep's) are shown, to keep or click away.
  for (const line of text.value.split("\n")) {
    const box = line.split(",").map(Number);
    if (box.length !== 4 || box.some(Number.isNaN)) continue;
    const el = document.createElement("div");
    el.className = "box";
    el.dataset.box = box.map((v) => v.toFixed(4)).join(",");
    place(el, box);
    area.append(el);
  }

  area.addEventListener("pointerdown", (event) => {
    if (event.target.classList.contains("box")) {
      event.target.remove();
      write();
      return;
    }
    start = fraction(event);
    drawing = document.createElement("div");
    drawing.className = "box";
    area.append(drawing);
    area.setPointerCapture(event.pointerId);
  });
  area.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    const [x, y] = fraction(event);
    const box = [Math.min(x, start[0]), Math.min(y, start[1]),
                 Math.abs(x - start[0]), Math.abs(y - start[1])];
    place(drawing, box);
    drawing.dataset.box = box.map((v) => v.toFixed(4)).join(",");
  });
  area.addEventListener("pointerup", () => {
    if (drawing && !(drawing.dataset.box && Number(drawing.dataset.box.split(",")[2]) > 0.005)) {
      drawing.remove();  // a click, not a box
    }
    drawing = null;
    write();
  });
});
