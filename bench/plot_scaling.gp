# Plots of `iftrain bench scaling --csv=FILE`:
#   gnuplot -e "csv='bench/out/scaling.csv'; out='bench/out/scaling'" bench/plot_scaling.gp
# writes OUT-tokens.png (tokens/s vs ranks), OUT-efficiency.png and
# OUT-split.png (compute / communication / idle per case).
if (!exists("csv")) csv = 'bench/out/scaling.csv'
if (!exists("out")) out = 'bench/out/scaling'
set datafile separator ','
set terminal pngcairo size 900,560 noenhanced
set key outside right
set grid
set xlabel 'ranks (DP x TP)'
set xtics 1

# one series per (mode, hidden, layout kind): DP only (tp = 1), TP 1D only (dp = 1), DP x TP 1D,
# TP 2D (column 17 = tp_grid PRxPC; '1d' or absent in 1D rows and older CSVs)
is2d(x) = (valid(17) ? strcol(17) ne '1d' : 0)
sel1(m, h, kind) = ((kind == 0 && $6 == 1) || (kind == 1 && $5 == 1) || (kind == 2 && (($5 > 1 && $6 > 1) || $7 == 1)))
sel(m, h, kind) = (strcol(1) eq m && $3 == h && (kind == 3 ? (is2d(0) || $7 == 1) : (!is2d(0) && sel1(m, h, kind))))
stats csv using 3 skip 1 nooutput
hmin = STATS_min; hmax = STATS_max
modes = 'strong weak'
kinds = 'DP TP DPxTP TP-2D'

set output out.'-tokens.png'
set title 'iftrain training throughput'
set ylabel 'tokens/s'
plot for [m in modes] for [h in sprintf('%d %d', hmin, hmax)] for [k=0:3] csv skip 1 \
     using (sel(m, h+0, k) ? $7 : 1/0):10 with linespoints title sprintf('%s h%s %s', m, h, word(kinds, k+1))

set output out.'-efficiency.png'
set title 'scaling efficiency (tokens/s per rank / 1x1)'
set ylabel 'efficiency'
set yrange [0:1.2]
plot for [m in modes] for [h in sprintf('%d %d', hmin, hmax)] for [k=0:3] csv skip 1 \
     using (sel(m, h+0, k) ? $7 : 1/0):15 with linespoints title sprintf('%s h%s %s', m, h, word(kinds, k+1))

set output out.'-split.png'
set title 'step time split per case (mean over ranks)'
set ylabel 'seconds per step'
set yrange [0:*]
set style data histograms
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -45 noenhanced
set xlabel ''
plot csv skip 1 using 12:xtic(sprintf('%s h%d %dx%d%s', strcol(1), $3, $5, $6, is2d(0) ? ' 2D '.strcol(17) : '')) title 'compute', \
     '' skip 1 using 13 title 'communication', '' skip 1 using 14 title 'idle'
