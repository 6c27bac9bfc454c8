/* nnprof report page: draws the charts from the JSON block #nnprof-data with the
   bundled Chart.js. Text from the run is only ever set with textContent. */
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('nnprof-data').textContent);
  var charts = window.nnprofCharts = {};
  var RED = '#d62728', GREY = '#888';
  Chart.defaults.animation = false;
  Chart.defaults.font.size = 11;
  Chart.defaults.maintainAspectRatio = false;

  function ms(s) { return s == null ? '-' : (s * 1e3).toFixed(2) + ' ms'; }
  function toMs(a) { return a.map(function (v) { return v == null ? null : v * 1e3; }); }
  function make(id, cfg) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    charts[id] = new Chart(el, cfg);
    return charts[id];
  }
  function drop(id, why) {
    var el = document.getElementById(id);
    if (!el) { return; }
    var box = el.parentNode;
    box.textContent = '';
    box.classList.add('empty');
    if (why) {
      var p = document.createElement('p');
      p.className = 'muted';
      p.textContent = why;
      box.appendChild(p);
    }
  }
  function note(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }
  function title(text) { return { display: true, text: text, align: 'start' }; }
  function bucketLabels(b, word) {
    return b.x0.map(function (x, i) {
      return b.bucket === 1 ? word + ' ' + x : word + 's ' + x + '\u2013' + b.x1[i];
    });
  }

  function stepBars(id, b, word, heading) {
    if (!b || !b.n) { drop(id, 'No ' + word + ' steps.'); return; }
    var labels = bucketLabels(b, word);
    var sets = D.phases.map(function (p) {
      return { type: 'bar', label: p, data: toMs(b.phases[p]), backgroundColor: D.colors[p],
               stack: 'phases', borderWidth: 0, categoryPercentage: 1.0, barPercentage: 0.95 };
    });
    var maxWall = Math.max.apply(null, b.wall_max.concat([0]));
    if (b.bucket > 1) {
      sets.push({ type: 'line', label: 'slowest step in bar', data: toMs(b.wall_max),
                  stack: 'slowest', showLine: false, pointRadius: 1.5, borderColor: GREY,
                  backgroundColor: GREY });
    }
    var over = b.over.map(function (n, i) { return n > 0 ? b.wall_max[i] * 1e3 : null; });
    if (b.over.some(function (n) { return n > 0; })) {
      sets.push({ type: 'line', label: 'over budget', data: over, stack: 'over',
                  showLine: false, pointStyle: 'triangle', pointRadius: 6, borderColor: RED,
                  backgroundColor: RED });
    }
    var budgetShown = D.budget_s <= 3 * maxWall;
    // each line has a stack of its own: on the stacked y axis, a line without one
    // shares the stack of every other line and is drawn on top of their values
    if (budgetShown) {
      sets.push({ type: 'line', label: 'budget ' + D.budget_s + ' s', stack: 'budget',
                  data: labels.map(function () { return D.budget_s * 1e3; }), borderColor: RED,
                  borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0, fill: false });
    }
    make(id, {
      data: { labels: labels, datasets: sets },
      options: {
        interaction: { mode: 'index', intersect: false },
        scales: { x: { stacked: true, ticks: { maxTicksLimit: 12, autoSkip: true } },
                  y: { stacked: true, title: { display: true, text: 'ms per step' },
                       beginAtZero: true } },
        plugins: {
          title: title(heading + (b.bucket > 1 ? ' (each bar: mean of ' + b.bucket +
                                  ' consecutive steps)' : '')),
          tooltip: { callbacks: {
            label: function (c) {
              return c.dataset.label + ': ' + (c.raw == null ? '-' : c.raw.toFixed(2) + ' ms');
            },
            footer: function (items) {
              var i = items[0].dataIndex;
              var t = 'step time ' + ms(b.wall_mean[i]) + (b.bucket > 1 ? ' mean, ' +
                      ms(b.wall_max[i]) + ' max' : '');
              if (b.over[i]) { t += '\n' + b.over[i] + ' over budget'; }
              return t;
            } } } } }
    });
    return budgetShown;
  }

  function runPage() {
    var shown = stepBars('chart-steps', D.train, 'step', 'Train steps: time per phase');
    if (D.train && D.train.n) {
      var maxWall = Math.max.apply(null, D.train.wall_max.concat([0]));
      note('steps-note', D.train.n + ' train steps. ' + (shown ? 'Dashed line: the budget of ' +
           D.budget_s + ' s. ' : 'The budget (' + D.budget_s + ' s) is ' +
           Math.round(D.budget_s / Math.max(maxWall, 1e-9)) + 'x the slowest step, off the chart. ') +
           'Hover a bar for its breakdown.');
    }
    if (D.eval && D.eval.n) { stepBars('chart-eval', D.eval, 'eval step', 'Evaluation steps'); }
    else { drop('chart-eval', ''); }
    var h = D.hist;
    if (h && h.counts && h.counts.length) {
      var labels = h.counts.map(function (_, i) {
        return (h.edges[i] * 1e3).toFixed(2) + '\u2013' + (h.edges[i + 1] * 1e3).toFixed(2) + ' ms';
      });
      make('chart-hist', { type: 'bar', data: { labels: labels, datasets: [{
        label: 'steps', data: h.counts, backgroundColor: '#4e79a7',
        categoryPercentage: 1.0, barPercentage: 1.0 }] },
        options: { plugins: { legend: { display: false },
          title: title('Step-time distribution' + (h.clipped ? ' (' + h.clipped +
                       ' slowest steps in the last bar)' : '')) },
          scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true } } } });
    } else { drop('chart-hist', 'No steps.'); }

    var L = D.train_loss, sets = [];
    if (L && L.x.length) {
      var pts = function (ys) { return L.x.map(function (x, i) { return { x: x, y: ys[i] }; }); };
      if (L.bucket > 1) {
        sets.push({ label: 'min/max of ' + L.bucket + ' steps', data: pts(L.max), pointRadius: 0,
                    borderWidth: 0, backgroundColor: 'rgba(78,121,167,0.15)', fill: '+1' });
        sets.push({ label: '_min', data: pts(L.min), pointRadius: 0, borderWidth: 0, fill: false });
      }
      sets.push({ label: 'train loss', data: pts(L.mean), borderColor: '#4e79a7',
                  pointRadius: 0, borderWidth: 1.5, fill: false });
    }
    if (D.val_loss && D.val_loss.length) {
      sets.push({ label: 'validation loss', data: D.val_loss.map(function (p) {
        return { x: p[0], y: p[1] }; }), borderColor: '#e15759', backgroundColor: '#e15759',
        pointRadius: 3, borderWidth: 1.5, fill: false });
    }
    if (sets.length) {
      make('chart-loss', { type: 'line', data: { datasets: sets }, options: {
        parsing: true, scales: { x: { type: 'linear', title: { display: true, text: 'train step' } } },
        plugins: { title: title('Loss'), legend: { labels: { filter: function (i) {
          return i.text.charAt(0) !== '_'; } } } } } });
    } else { drop('chart-loss', 'No loss was seen.'); }

    var M = (D.metrics || []).filter(function (m) { return m.accuracy != null; });
    if (M.length) {
      var keys = [['accuracy', '#4e79a7'], ['precision_macro', '#f28e2b'],
                  ['recall_macro', '#59a14f'], ['f1_macro', '#e15759']];
      make('chart-metrics', { type: 'line', data: { datasets: keys.map(function (k) {
        return { label: k[0].replace('_', ' '), borderColor: k[1], backgroundColor: k[1],
                 pointRadius: 3, data: M.map(function (m) { return { x: m.after_train_steps,
                                                                   y: m[k[0]] }; }) }; }) },
        options: { scales: { x: { type: 'linear', title: { display: true,
                   text: 'after train steps' } }, y: { min: 0, max: 1 } },
                   plugins: { title: title('Validation metrics per pass') } } });
    } else { drop('chart-metrics', ''); }

    var LD = (D.loaders || []).filter(function (l) { return l.capacity != null || l.demand != null; });
    if (LD.length) {
      make('chart-loaders', { type: 'bar', data: { labels: LD.map(function (l) { return l.id; }),
        datasets: [{ label: 'makes (batches/s)', backgroundColor: '#59a14f',
                     data: LD.map(function (l) { return l.capacity; }) },
                   { label: 'needs (batches/s)', backgroundColor: '#e15759',
                     data: LD.map(function (l) { return l.demand; }) }] },
        options: { indexAxis: 'y', plugins: { title: title('Loader capacity vs demand') } } });
    } else { drop('chart-loaders', ''); }

    var S = D.samples || {}, names = Object.keys(S);
    if (names.length) {
      var colors = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759'];
      make('chart-samples', { type: 'line', data: { datasets: names.map(function (n, k) {
        return { label: n, borderColor: colors[k % 4], pointRadius: 0, borderWidth: 1.2,
                 data: S[n].t.map(function (t, i) { return { x: t, y: S[n].v[i] }; }) }; }) },
        options: { scales: { x: { type: 'linear', title: { display: true, text: 's since start' } },
                             y: { beginAtZero: true } },
                   plugins: { title: title('Host and GPU samples') } } });
    } else { drop('chart-samples', 'No host or GPU samples (--no-monitors, or too short a run).'); }

    var MM = D.memory || {};
    if (MM.x && MM.x.length) {
      var mk = [['rss', 'host RSS', '#4e79a7'], ['allocated', 'CUDA allocated', '#e15759'],
                ['reserved', 'CUDA reserved', '#f28e2b']];
      var msets = mk.filter(function (k) { return MM[k[0]]; }).map(function (k) {
        return { label: k[1], borderColor: k[2], pointRadius: 0, borderWidth: 1.2,
                 data: MM.x.map(function (x, i) { return { x: x, y: MM[k[0]][i] == null ? null : MM[k[0]][i] / 1e6 }; }) };
      });
      if (MM.device_total) {
        msets.push({ label: 'device total', borderColor: RED, borderDash: [6, 4], pointRadius: 0,
                     borderWidth: 1, data: [{ x: MM.x[0], y: MM.device_total / 1e6 },
                                            { x: MM.x[MM.x.length - 1], y: MM.device_total / 1e6 }] });
      }
      make('chart-memory', { type: 'line', data: { datasets: msets },
        options: { scales: { x: { type: 'linear', title: { display: true, text: 'train step' } },
                             y: { beginAtZero: true, title: { display: true, text: 'MB' } } },
                   plugins: { title: title('Memory at the end of each train step') } } });
    } else if (document.getElementById('chart-memory')) { drop('chart-memory', 'No memory reading per step (--no-monitors on CPU).'); }

    var K = D.skew;
    if (K && K.train_index && K.train_index.length) {
      var ranks = Array.from(new Set(K.slowest_rank)).sort(function (a, b) { return a - b; });
      var palette = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7'];
      make('chart-skew', { type: 'scatter', data: { datasets: ranks.map(function (r, k) {
        return { label: 'slowest: rank ' + r, backgroundColor: palette[k % palette.length],
                 pointRadius: 2, data: K.train_index.map(function (x, i) {
                   return K.slowest_rank[i] === r ? { x: x, y: K.gap_s[i] * 1e3 } : null;
                 }).filter(function (p) { return p !== null; }) }; }) },
        options: { scales: { x: { type: 'linear', title: { display: true, text: 'train step' } },
                             y: { beginAtZero: true, title: { display: true, text: 'ms the others wait' } } },
                   plugins: { title: title('Per step: how long the other ranks wait for the slowest') } } });
    } else if (document.getElementById('chart-skew')) { drop('chart-skew', 'No train step ran on every rank.'); }
    scalingChart();
  }

  function scalingChart() {
    var SC = D.scaling;
    if (SC && SC.ranks && SC.ranks.length > 1) {
      var pts = SC.ranks.map(function (r, i) { return { x: r, y: SC.samples_per_s[i] }; });
      var sets = [{ label: 'projected samples/s', borderColor: '#4e79a7', backgroundColor: '#4e79a7',
                    pointRadius: 4, data: pts }];
      if (SC.linear) {
        sets.push({ label: 'linear', borderColor: '#bab0ac', borderDash: [4, 4], pointRadius: 0,
                    data: SC.ranks.map(function (r, i) { return { x: r, y: SC.linear[i] }; }) });
      }
      make('chart-scaling', { type: 'line', data: { datasets: sets },
        options: { scales: { x: { type: 'linear', title: { display: true, text: 'ranks' } },
                             y: { beginAtZero: true, title: { display: true, text: 'samples/s' } } },
                   plugins: { title: title('Projected throughput against ranks (bound in the tooltip)'),
                              tooltip: { callbacks: { afterLabel: function (c) {
                                return c.datasetIndex === 0 ? 'bound: ' + SC.bounds[c.dataIndex] : ''; } } } } } });
    } else if (document.getElementById('chart-scaling')) { drop('chart-scaling', 'Nothing to project.'); }
  }

  function checkPage() {
    var colors = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948'];
    var L = D.ladder || { names: [] };
    if (L.names.length) {
      make('chart-ladder', { type: 'bar', data: { labels: L.names, datasets: [
        { label: 'train loss, start', backgroundColor: 'rgba(78,121,167,0.45)', data: L.train_loss_first },
        { label: 'train loss, end', backgroundColor: '#4e79a7', data: L.train_loss_last },
        { label: 'validation loss, start', backgroundColor: 'rgba(242,142,43,0.45)', data: L.val_loss_first },
        { label: 'validation loss, end', backgroundColor: '#f28e2b', data: L.val_loss_last }] },
        options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'loss' } } },
                   plugins: { title: title('Each rung: train and validation loss at its start and end') } } });
    }
    var names = Object.keys(D.curves || {});
    if (!names.length) { drop('chart-overfit', 'No rung trained.'); return; }
    var sets = [];
    names.forEach(function (n, k) {
      var c = D.curves[n], col = colors[k % 6];
      sets.push({ label: n + ' train', borderColor: col, backgroundColor: col, pointRadius: 1,
                  data: c.x.map(function (x, i) { return { x: x, y: c.mean[i] }; }) });
      var v = (D.val || {})[n];
      if (v) {
        sets.push({ label: n + ' validation', borderColor: col, backgroundColor: col, borderDash: [6, 4],
                    pointRadius: 3, data: v.x.map(function (x, i) { return { x: x, y: v.y[i] }; }) });
      }
    });
    make('chart-overfit', { type: 'line', data: { datasets: sets },
      options: { scales: { x: { type: 'linear', title: { display: true, text: 'train step' } },
                           y: { beginAtZero: true, title: { display: true, text: 'loss' } } },
                 plugins: { title: title('Train loss (solid) and validation loss (dashed) of each rung') } } });
  }

  function comparePage() {
    var A = D.a, B = D.b;
    make('chart-compare', { type: 'bar', data: { labels: D.phases, datasets: [
      { label: D.names[0] + ' mean', backgroundColor: '#4e79a7', data: toMs(A.mean) },
      { label: D.names[1] + ' mean', backgroundColor: '#f28e2b', data: toMs(B.mean) },
      { label: D.names[0] + ' p95', backgroundColor: 'rgba(78,121,167,0.35)', data: toMs(A.p95) },
      { label: D.names[1] + ' p95', backgroundColor: 'rgba(242,142,43,0.35)', data: toMs(B.p95) }] },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: 'ms per step' } } },
                 plugins: { title: title('Per-phase time per train step') } } });
  }

  function sweepPage() {
    var T = D.trials || [], word = D.resource || 'pass', metric = D.metric || 'value';
    var palette = ['#4e79a7', '#f28e2b', '#59a14f', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
    var isBest = function (t) { return D.best != null && t.number === D.best; };
    var curves = T.filter(function (t) { return t.curve && t.curve.length; });
    if (curves.length) {
      var sets = curves.map(function (t, k) {
        var best = isBest(t), pruned = t.state === 'pruned', last = t.curve.length - 1;
        var color = best ? RED : (pruned ? GREY : palette[k % palette.length]);
        var at = function (end, other) {
          return t.curve.map(function (_, i) { return pruned && i === last ? end : other; });
        };
        return { label: 'trial ' + t.number + (best ? ' (best)' : (t.state === 'complete' ? ''
                                               : ' (' + t.state + ')')),
                 data: t.curve.map(function (p) { return { x: p[0], y: p[1] }; }),
                 borderColor: color, backgroundColor: color, borderWidth: best ? 3 : 1.2,
                 borderDash: pruned ? [4, 3] : [], order: best ? 0 : 1, fill: false,
                 pointStyle: at('crossRot', 'circle'), pointRadius: at(7, best ? 3 : 1.5),
                 pointBorderWidth: at(2.5, 1) };
      });
      make('chart-curves', { type: 'line', data: { datasets: sets }, options: {
        scales: { x: { type: 'linear', title: { display: true, text: word } },
                  y: { title: { display: true, text: metric + ' (' + D.direction + ')' } } },
        plugins: { title: title('Every trial\'s ' + metric + ' per ' + word),
                   legend: { display: sets.length <= 12 } } } });
      note('curves-note', 'Red, thick: the best trial. Grey, dashed: pruned trials, a cross ' +
           'where each stopped.' + (sets.length > 12 ? ' Hover a line for its trial.' : ''));
    } else { drop('chart-curves', 'No trial reported an intermediate value yet.'); }

    (D.params || []).forEach(function (p, i) {
      var id = 'chart-param-' + i, cat = p.kind === 'choice', log = p.log && !cat;
      var labels = cat ? (p.choices || []).map(String) : [];
      var xOf = function (t) {
        var v = t.params ? t.params[p.name] : null;
        if (v == null) { return null; }
        if (cat) {
          v = String(v);
          if (labels.indexOf(v) < 0) { labels.push(v); }
          return v;
        }
        return typeof v === 'number' && isFinite(v) && (!log || v > 0) ? v : null;
      };
      var pts = function (keep, key) {
        return T.filter(keep).map(function (t) {
          return { x: xOf(t), y: t[key], n: t.number };
        }).filter(function (q) { return q.x != null && q.y != null; });
      };
      var sets = [
        { label: 'complete', data: pts(function (t) {
            return t.state === 'complete' && !isBest(t); }, 'value'),
          borderColor: '#4e79a7', backgroundColor: '#4e79a7', pointRadius: 4 },
        { label: 'pruned (last value)', data: pts(function (t) {
            return t.state === 'pruned'; }, 'last'),
          borderColor: GREY, backgroundColor: GREY, pointStyle: 'crossRot', pointRadius: 6,
          pointBorderWidth: 2 },
        { label: 'best', data: pts(function (t) { return isBest(t) && t.state === 'complete'; },
                                   'value'),
          borderColor: RED, backgroundColor: RED, pointStyle: 'star', pointRadius: 8,
          pointBorderWidth: 2 }].filter(function (d) { return d.data.length; });
      if (!sets.length) { drop(id, 'No trial has a value for ' + p.name + ' yet.'); return; }
      var x = cat ? { type: 'category', labels: labels, offset: true }
                  : { type: log ? 'logarithmic' : 'linear',
                      ticks: { maxRotation: 0, autoSkipPadding: 12 } };
      x.title = { display: true, text: p.name + (log ? ' (log scale)' : '') };
      make(id, { type: 'scatter', data: { datasets: sets }, options: {
        scales: { x: x, y: { title: { display: true, text: metric } } },
        plugins: { title: title(metric + ' against ' + p.name),
                   tooltip: { callbacks: { label: function (c) {
                     return 'trial ' + c.raw.n + ': ' + p.name + ' ' + c.raw.x + ', ' + metric +
                            ' ' + c.raw.y;
                   } } } } } });
    });
  }

  var pages = { run: runPage, check: checkPage, compare: comparePage, sweep: sweepPage };
  try {
    (pages[D.kind] || function () {})();
    document.body.setAttribute('data-charts', 'drawn');
  } catch (e) {
    document.body.setAttribute('data-charts', 'failed');
    throw e;
  }
}());
