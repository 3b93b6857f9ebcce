"""Paired-bootstrap statistics for the weak-to-strong report, and a simulation that
calibrates the decision procedure.

Every number this module returns is defined here; the report and any paper built on it
should quote these definitions.

Data
----
Every model is scored by a per-test-sample correctness array ``c`` of length ``m`` (the
number of test samples), with values in [0, 1]. For a single model or a single training
seed ``c_i`` is 0 or 1. A student trained with several seeds is scored by the mean over
its seeds, ``c_i`` = fraction of seeds that got sample ``i`` right, so its accuracy
``mean(c)`` is the mean of its per-seed accuracies. All arrays passed to one call must be
aligned: position ``i`` is the same test sample in each.

What is resampled
-----------------
A nonparametric *paired bootstrap over test samples*. ``n`` resamples (default 1000),
each ``m`` test-sample indices drawn uniformly with replacement, from
``rng = numpy.random.default_rng(seed)`` (default seed 0) as ``rng.integers(0, m, m)`` once
per resample, in order (every function here draws this one stream, from
``_resample_indices``). Within one call every array is evaluated on the SAME ``n`` index
vectors, so every comparison is paired: per-sample difficulty shared by the models cancels
out of differences and ratios; and with the same seed (the report's: the default), one
model's accuracy interval (:func:`accuracy_interval`) is taken over the same resamples as its PGR.

Training seeds are not resampled. The intervals describe test-set sampling only,
conditional on the trained models; the spread over training seeds is reported separately
by :func:`seed_spread`.

Intervals
---------
Percentile intervals: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's
default linear interpolation) of the statistic over the resamples; ``level`` = 0.95 by
default.

Accuracy (:func:`accuracy_interval`)
------------------------------------
The interval of one model's accuracy ``mean(c)`` over the resamples. Each resample's
mean is taken as ``c[idx].mean()`` (numpy's pairwise sum), where the paired functions
sum by count matrix: the two agree exactly on 0/1 correctness and within float rounding
(~1e-16) on seed averages, each as the report has always computed it.

Gap (:func:`gap`)
-----------------
``gap = acc(ceiling) - acc(weak)``, point value on the full test set, interval over the
resamples. ``significant`` is True iff the interval's lower bound is > 0 (the ceiling beats
the weak model; a one-sided test at ``(1 - level) / 2`` = 2.5 %).

PGR (:func:`pgr_stat`)
----------------------
``PGR = (acc(w2s) - acc(weak)) / gap`` (Burns et al. 2023). Point value: on the full test
set, ``None`` when ``gap <= 0``. On each resample the ratio uses that resample's own
numerator and gap; resamples whose gap is ``<= 0`` are *dropped* (the ratio is undefined or
changes sign there). ``dropped_frac`` = dropped resamples / ``n``, always reported, also
when it is 0. The PGR interval is taken over the kept resamples only (``None`` when none is
kept). Because that is an interval conditional on ``gap > 0``, it is only trustworthy when
few resamples are dropped, hence the verdict, decided in this order:

The verdict is a :class:`Verdict`; its value is the text report.json stores.

* ``"undefined"``: the point gap is ``<= 0``; there is no PGR.
* ``"not significant (ceiling does not beat weak)"``: the point gap is > 0 but the gap
  interval reaches 0 or below. The report must print this verdict INSTEAD of a PGR number
  and interval (the point value and interval stay in the result for the record).
* ``"ok"``: the gap is significant; the PGR point value and interval may be printed.

``above_100`` is True iff the POINT PGR is > 1 (the W2S student beats the ceiling on this
test set: a warning sign of a weak ceiling or a small test set, whatever the verdict).
``ci_above_100`` is True iff the whole PGR interval lies above 1 (lower bound > 1).

Paired difference (:func:`paired_difference`)
----------------------------------------------
The headline comparison, e.g. "W2S on debate labels minus W2S on plain weak labels":
``acc_diff = acc(student) - acc(reference)``, with its interval over the resamples.

* ``significant``: the interval excludes 0 (lower > 0 or upper < 0). This is the
  TWO-SIDED claim "there is a difference", a test at ``1 - level`` (5 %).
* ``direction`` (a :class:`Direction`): ``"better"`` iff lower > 0, ``"worse"`` iff upper < 0, otherwise
  ``"no detectable difference"``. ``"better"`` is the ONE-SIDED claim "the student beats
  the reference" (debate beats plain); with a two-sided 95 % interval it is a one-sided
  test at 2.5 %, so with no true difference it is made in about 2.5 % of experiments.

``pgr_diff = acc_diff / gap`` (= PGR(student) - PGR(reference)); on each resample
``acc_diff_b / gap_b`` over the resamples with ``gap_b > 0``, the others dropped and
counted in ``pgr_dropped_frac`` (always reported). ``pgr_verdict`` follows the PGR rules
above; ``pgr_diff`` and ``pgr_diff_ci`` are ``None`` unless ``pgr_verdict == "ok"``. The
significance claim is made on ``acc_diff`` only: dividing by the (positive) gap cannot
create a difference that the accuracies do not show.

No correction for multiple comparisons is applied: each call is one comparison at the
stated level; a report that compares several labellers makes several such claims.

Accuracy difference (:func:`accuracy_difference`)
-------------------------------------------------
The accuracy half of :func:`paired_difference` alone, for two models with no common weak
model and ceiling (the same row of two runs, `run.py compare`, paired on their common test
ids): ``acc_diff``, its interval over the same resamples, ``significant`` and
``direction`` exactly as above; no PGR.

Minimum detectable difference (:func:`minimum_detectable_difference`)
---------------------------------------------------------------------
The smallest true paired accuracy difference ``delta`` that a two-sided test at
``1 - level`` detects with probability ``power`` (normal approximation; the paired bootstrap
interval above is that test):

    MDE = (z_{(1 + level) / 2} + z_{power}) * sqrt(var_D / n_test + tau^2 / R)

``var_D`` is the variance of one test sample's correctness difference. Under independence
of the two models' correctness it is ``p_a (1 - p_a) + p_b (1 - p_b)``. That is
conservative: two students of one strong model are positively correlated (they find the
same samples hard), which shrinks the variance by ``2 cov``; and a seed-averaged
correctness in [0, 1] with mean ``p`` has variance at most ``p (1 - p)``. ``tau`` is the
between-replicate standard deviation of the difference itself (what re-drawing debates and
seeds moves it by, on a fixed test set); with ``R`` replicates its mean has variance
``tau^2 / R``. The test-sample term does NOT shrink with ``R``: every replicate is scored on
the same test set, so its noise is shared (the model counts it once, as if fully shared:
conservative again). With ``R = 1`` and ``tau > 0`` one draw's difference carries the whole
``tau^2``. ``tests/test_power.py`` checks by simulation that :func:`paired_difference`
detects a true difference of this size in about ``power`` of the runs.

Error similarity: CAPA (:func:`capa`)
--------------------------------------
Chance Adjusted Probabilistic Agreement, kappa_p of Goel et al. 2025 ("Great models think
alike and this undermines AI oversight", eqs. 2-4, and appendix A.3 for classification),
for a binary task from each model's P(label = 1) per sample, ``p_a`` and ``p_b``, and the
gold labels:

* observed agreement ``cp_obs`` = mean over samples of ``sum_k p_a(k) p_b(k)`` =
  ``p_a p_b + (1 - p_a)(1 - p_b)``: how often the two would agree if each sampled its
  answer from its own probabilities (no gold label needed);
* each model's chance term ``q_j`` = mean over samples of the probability it puts on the
  gold label (its accuracy, for a model that answers 0/1);
* expected agreement ``cp_exp`` = ``q_a q_b + (1 - q_a)(1 - q_b)`` (the paper's
  ``q_a q_b + (1 - q_a)(1 - q_b) / (|C| - 1)`` with two classes): the agreement of two
  independent models with these accuracies, which agree on a sample both get wrong;
* ``capa`` = ``(cp_obs - cp_exp) / (1 - cp_exp)``, in [-1, 1]: 0 for models whose errors
  are independent, 1 for identical 0/1 predictions, lower for models that err on
  different samples. ``None`` when ``cp_exp`` = 1 (both models put all their mass on
  the gold label everywhere: there are no errors to compare). Two identical models that
  are unsure (P(1) near 0.5) score below 1: sampling from them disagrees by chance.
  With 0/1 predictions it is Geirhos et al.'s error consistency.

Interval: the percentile interval over the test-sample resamples (``_resample_means`` of
the per-sample agreement and the two per-sample gold probabilities: each resample's
``cp_obs``, ``q_a`` and ``q_b``), resamples whose ``cp_exp`` is 1 dropped.
``tests/test_audit.py`` checks by simulation that it covers the true 0 of two models
with independent errors in about 95 % of runs.

Rate (:func:`rate`)
-------------------
A share pooled over several trials per sample, e.g. how often a weak judge's prediction
follows the side a transcript favours, over every (member, sample) pair: ``rate`` =
``sum_i hits_i / sum_i trials_i`` over the samples ``i``, with the percentile interval of
the same ratio over the test-sample resamples (a sample's trials move together, so the
interval is clustered by sample); resamples with no trial are dropped. ``None`` (rate and
interval) when no sample has a trial.

Seed spread (:func:`seed_spread`)
---------------------------------
Mean, sample standard deviation (``ddof=1``; ``None`` for a single seed), min and max of a
student's per-seed test accuracies.

Error breakdown (:func:`error_breakdown`)
-----------------------------------------
Splits the test samples by whether the weak labeller got them right (``weak_c`` must be
0/1). ``student_acc_on_weak_right`` / ``_wrong`` are the student's mean correctness on each
part (``None`` on an empty part), with the counts ``n_weak_right`` / ``n_weak_wrong``.
``student_wrong_given_weak_right`` = 1 - ``student_acc_on_weak_right`` and
``student_wrong_given_weak_wrong`` = 1 - ``student_acc_on_weak_wrong``: the two conditional
error rates contrasted by the weak-to-strong *deception* view of Yang et al. 2024
("Super(ficial)-alignment: Strong models may deceive weak models in weak-to-strong
generalization"): a student that looks aligned where the weak supervisor can check it
(low error where the weak model is right) while erring where the supervisor cannot. (Their
deception score further restricts to samples the strong model itself knows; this module
reports the two plain conditional rates.) ``agreement`` is the mean agreement of the
student's predictions with the weak labeller's predictions (Burns et al.'s
student-supervisor agreement, a measure of imitation): per sample
``s*w + (1-s)*(1-w)`` with ``s`` the student's prediction (or, seed-averaged, the fraction of
seeds predicting class 1) and ``w`` the weak prediction (0/1), i.e. the fraction of seeds
that agree. With binary labels, agreeing with the weak model where it is wrong IS being
wrong, so ``agreement_on_weak_wrong`` equals ``student_wrong_given_weak_wrong`` for
consistent inputs.

Simulation (:func:`simulate_claim_rate`)
----------------------------------------
Each run draws a fresh test set of ``n_test`` samples and per-sample 0/1 correctness of a
reference student (true accuracy ``base_acc``) and a debate student (true accuracy
``base_acc + true_diff``), correlated through shared per-sample difficulty: per sample,
with probability ``shared`` (default 0.5) both students use ONE common uniform ``u_i``
(student correct iff ``u_i`` < its accuracy, so the better one is right whenever the worse
one is), otherwise each uses its own independent uniform. Marginal accuracies are exact;
the covariance of the two correctness indicators is ``shared * (min(p1, p2) - p1 * p2)``.
A weak model and a ceiling (true accuracies ``weak_acc``, ``ceil_acc``) are drawn
independently. Each run then applies exactly the decision of :func:`paired_difference`
(same resampling, same percentile interval, same rules) with ``n_resamples`` resamples
(default 1000, as in the report) drawn from ``boot_seed`` (default 0, as in the report;
every run therefore uses the same index stream, as every real report does, while the data
differ between runs). The result counts the runs whose ``direction`` is ``"better"``
(one-sided claim), ``"worse"``, and ``significant`` (two-sided claim: any difference).

Replicates (:func:`pooled_difference`)
--------------------------------------
Every interval above is conditional on ONE draw of the method: one set of debates, one
seed per weak member and student (and one split). A run with ``replicates`` R > 1 draws
the method R times (config ``RunConfig.for_replicate``: new debate, weak and strong
seeds, and with ``replicate_splits`` a new split) and pools each comparison over them.

Model: replicate r's difference ``d_r = mean(x_r - y_r)`` (its test accuracy difference)
is ``delta + u_r + e_r``: ``delta`` the method's effect, ``u_r`` (variance ``tau²``) what
the draw of debates and seeds adds, ``e_r`` test-sample noise. With a shared test set (the
same test ids in every replicate, in the same order: ``replicate_splits`` false) part of
``e_r`` is COMMON to every replicate (a sample that favours x favours it in each draw) and
does not average out over replicates; with separate test sets it is independent.

* ``estimate`` = ``mean_r d_r``; ``per_replicate`` = the ``d_r``.
* Test-sample level, by bootstrap: ``n`` resamples of each replicate's test samples as
  in :func:`paired_difference`, with the SAME index stream (``seed``) in every replicate
  when the test set is shared, so the common part is resampled jointly, and stream
  ``seed + r`` for replicate r otherwise. From the resampled ``d*_{r,b}``:
  ``v_test`` = variance over b of ``mean_r d*_{r,b}`` (the test-sample variance of the
  estimate) and ``v_within`` = ``sum_r var_b(d*_{r,b} - mean_r d*_{r,b}) / (R - 1)`` (the
  part of the test-sample noise that differs between replicates).
* Replicate level, analytic: ``s2`` = sample variance of the ``d_r`` (``ddof=1``); it holds
  ``tau²`` plus the test-sample noise that differs between replicates, so ``s2 / R``
  estimates the variance of the estimate that replicates average out, with R - 1
  degrees of freedom. ``v_common`` = ``max(0, v_test - v_within / R)`` is the common
  test-sample part, which no number of replicates removes, estimated from all the test
  samples. ``se`` = ``sqrt(s2 / R + v_common)``. The interval scales each part by its own
  quantile: ``ci`` = ``estimate ∓ sqrt(t_{R-1}(q)² · s2 / R + z(q)² · v_common)``,
  ``q = (1 + level) / 2`` (:func:`t_quantile`; t_2 = 4.30 for R = 3): with no common part
  it is the exact t interval over the replicates' differences; with no spread between
  replicates beyond the common part it is the normal interval of one draw.
  ``significant`` and ``direction`` follow the rules of :func:`paired_difference`.
  ``tau`` = ``sqrt(max(0, s2 - v_within))`` is reported, not used in the interval.
* ``per_replicate_direction``: each replicate's own one-draw verdict (percentile interval
  of its ``d*_{r,·}``; on a shared test set exactly the replicate report's verdict), and
  the stability, e.g. "worse in 3 of 3 replicates", counts them.

Why not a plain two-level percentile bootstrap (replicates and test samples resampled
together): the bootstrap variance of a mean of R clusters is (R-1)/R of the true one and
its percentiles are normal-like where t_{R-1} is due. Measured (200 runs, delta = 0,
m = 300): false claims 13-20 % at R = 2 and 3 with tau = 10 points. Two Satterthwaite
variants were measured and dropped: a t interval on ``max(0, s2 - v_within) / R + v_test``
claimed 13-19 % at R = 2 (tau 5-10); one on ``s2 / R + v_common`` with Satterthwaite
degrees of freedom over its terms claimed 7-11 % at R = 2, its df jumping up whenever
``s2`` is small by chance.

Simulation (:func:`simulate_replicate_claim_rate`): each run draws a test set of
``n_test`` samples (one for all replicates, or one per replicate) and R replicates; in
replicate r the reference student has true accuracy ``base_acc`` and the debate student
``base_acc + true_diff + u_r``, ``u_r ~ N(0, tau²)`` (clipped to [0, 1]). The two students'
per-sample correlation is that of :func:`simulate_claim_rate` (``shared``), with the
sample's uniform shared by every replicate when the test set is: so a sample's
difficulty is common to the draws. Each run applies :func:`pooled_difference`'s decision
(same resamples) and, for comparison, replicate 0's one-draw verdict (that of
:func:`paired_difference`).

Measured false-claim rates (true_diff = 0, two-sided, %; base_acc 0.7, shared 0.5,
1000 resamples), pooled (one draw's; mean pooled interval width in points), by
``python -c "from w2s_run.report.statistics import simulate_replicate_claim_rate as s;
print(s(0.0, TAU, M, 1000, R, True, seed=1))"``, 1000 runs each, shared test set:

    m=100 tau=0:  R=2 4.5 (4.9; 66) | R=3 3.1 (4.1; 20) | R=4 3.7 (5.2; 13) | R=5 3.9 (4.9; 11)
    m=100 tau=2:  R=2 4.8 (7.0; 75) | R=3 3.8 (6.3; 22) | R=4 4.1 (7.1; 15) | R=5 3.9 (6.7; 12)
    m=100 tau=5:  R=2 5.4 (16.6; 102) | R=3 4.6 (16.3; 30) | R=4 4.9 (16.4; 20) | R=5 4.1 (16.0; 16)
    m=100 tau=10: R=2 5.7 (36.2; 164) | R=3 4.7 (34.9; 48) | R=4 4.3 (36.8; 32) | R=5 3.5 (35.4; 26)
    m=300 tau=0:  R=2 3.9 (4.1; 38) | R=3 3.7 (4.7; 12) | R=4 4.6 (4.8; 8) | R=5 4.3 (4.0; 6)
    m=300 tau=2:  R=2 3.9 (10.8; 48) | R=3 3.8 (11.2; 15) | R=4 4.6 (10.5; 10) | R=5 4.7 (10.6; 8)
    m=300 tau=5:  R=2 4.4 (32.7; 83) | R=3 3.9 (32.7; 25) | R=4 5.2 (33.0; 16) | R=5 4.4 (33.4; 13)
    m=300 tau=10: R=2 4.4 (59.8; 151) | R=3 4.8 (58.6; 45) | R=4 5.7 (60.0; 30) | R=5 3.8 (57.3; 24)

Separate test sets (``False``), 500 runs each: pooled 3.4-6.8 % over the same grid;
one draw's as above. The one-draw interval's false claims grow with tau (a third to
three fifths of all runs at tau = 10); the pooled interval's stay near 5 % for every R
from 2. Its price at tau = 0, R = 3, m = 300: 12
points wide against about 10 for one draw's own interval (t_2 where a known variance
would allow z; the draws' spread cannot be told from zero with 3 of them).

Pooled PGR (:func:`pooled_pgr`)
-------------------------------
Per replicate r, the PGR's numerator ``n_r = acc(w2s) - acc(weak)`` and denominator
``g_r = acc(ceiling) - acc(weak)`` (the plain weak model, as one draw's PGR). The method's
PGR is the ratio of the expected numerator and denominator over draws, estimated by the
ratio of the pooled means: ``pgr = mean_r n_r / mean_r g_r`` (``None`` when
``mean_r g_r <= 0``). Not the mean of the replicates' own PGRs: one draw whose gap is near
zero would swing that mean by any amount; the replicates' own PGRs are reported
(``per_replicate``), not used.

The interval is Fieller's, by test inversion of the pooled two-level test: ``theta`` is in
it iff the pooled decision of :func:`pooled_difference`, applied to the per-sample
combination ``w2s - weak - theta (ceiling - weak)`` (replicate r's difference
``n_r - theta g_r``, same resamples), does NOT reject zero. The estimate, ``s2``,
``v_test`` and ``v_within`` of that combination are quadratic in ``theta`` (2x2 forms over
(n, g)), so the set is ``{F0 <= 0} ∪ {F1 <= 0}`` with ``F0 = est² - t² s2 / R`` (where
``v_common`` is 0) and ``F1 = F0 - z² (v_test - v_within / R)``: two quadratics, solved in
closed form; the interval is their hull. Hence:

* coverage: the true PGR ``theta*`` makes ``n - theta* g`` a difference of mean zero, so
  the interval covers it exactly as often as the pooled difference test does not make a
  false claim, whose calibration is measured above;
* one gate: the leading coefficients of both quadratics are positive iff the pooled gap's
  two-level interval lies above 0, which is the gate (``verdict`` OK, else
  NOT_SIGNIFICANT, or UNDEFINED when the pooled gap <= 0): then the interval is bounded
  and holds the point; otherwise it is unbounded and ``ci`` is ``None``.
* a ratio's interval is asymmetric when the gap is uncertain; the delta method's
  (``pgr ∓ half-width of the combination at theta = pgr / mean g``) is symmetric.

Simulation (:func:`simulate_pooled_pgr_coverage`): per run a test set of ``n_test``
samples (shared by the replicates, or one per replicate) and R replicates; in replicate r
the W2S student, the weak model and the ceiling have accuracies ``w2s_acc``,
``weak_acc``, ``ceil_acc`` each plus its own ``N(0, tau²)`` draw (clipped to [0, 1]); a
test sample's uniform is shared by the three models with probability ``shared`` (as in
:func:`simulate_claim_rate`) and by every replicate on a shared test set. The truth is
``(w2s_acc - weak_acc) / (ceil_acc - weak_acc)``. Coverage is counted over the runs
whose pooled gap is significant (``pooled_ok_rate``: the runs where a PGR is printed);
one draw's is that of :func:`pgr_stat` on replicate 0 over the runs whose replicate-0
gap is significant.

Measured coverage (%; weak 0.6, W2S 0.7, ceiling 0.85, truth 40 %; 1000 runs shared test,
500 separate), pooled (one draw's; delta method's; % of runs gated OK), by
``python -c "from w2s_run.report.statistics import simulate_pooled_pgr_coverage as s;
print(s(TAU, M, 1000, R, True, seed=1))"`` (separate: ``s(TAU, M, 500, R, False, seed=1)``):

    shared m=100 tau=0: R=2 97.2 (94.1; 97.2; 36) | R=3 95.3 (94.5; 96.4; 95) |
                        R=4 96.1 (94.5; 96.6; 100) | R=5 96.6 (96.0; 96.3; 100)
    shared m=100 tau=2: R=2 96.1 (92.4; 96.1; 36) | R=3 95.5 (89.9; 95.8; 90) |
                        R=4 95.5 (92.8; 96.1; 100) | R=5 96.4 (92.4; 96.3; 100)
    shared m=100 tau=5: R=2 96.6 (79.8; 96.2; 24) | R=3 95.2 (77.5; 94.5; 71) |
                        R=4 95.8 (80.1; 96.2; 93) | R=5 96.0 (77.3; 96.0; 99)
    shared m=300 tau=0: R=2 96.7 (94.6; 96.1; 65) | R=3 96.4 (95.9; 96.9; 100) |
                        R=4 95.1 (95.6; 95.5; 100) | R=5 97.1 (93.9; 97.2; 100)
    shared m=300 tau=2: R=2 95.5 (86.5; 95.7; 49) | R=3 96.1 (88.2; 96.4; 100) |
                        R=4 95.2 (87.1; 94.9; 100) | R=5 96.8 (86.6; 96.5; 100)
    shared m=300 tau=5: R=2 95.4 (59.6; 95.4; 28) | R=3 96.5 (61.9; 96.4; 78) |
                        R=4 94.5 (62.2; 94.9; 97) | R=5 94.3 (59.4; 94.7; 100)
    separate m=100 tau=0: R=2 98.4 (95.8; 95.2; 37) | R=3 97.0 (94.1; 97.2; 93) |
                          R=4 95.4 (94.1; 94.4; 100) | R=5 95.0 (95.4; 95.0; 100)
    separate m=100 tau=2: R=2 95.2 (91.4; 95.2; 34) | R=3 95.5 (93.0; 96.0; 90) |
                          R=4 95.2 (90.9; 95.6; 100) | R=5 93.8 (94.1; 93.2; 100)
    separate m=100 tau=5: R=2 95.8 (80.1; 94.2; 24) | R=3 95.6 (80.6; 95.6; 69) |
                          R=4 95.2 (77.4; 95.0; 92) | R=5 94.8 (82.0; 95.4; 99)
    separate m=300 tau=0: R=2 94.9 (95.0; 94.9; 59) | R=3 95.4 (93.2; 95.6; 100) |
                          R=4 94.6 (94.4; 94.0; 100) | R=5 93.8 (95.4; 93.8; 100)
    separate m=300 tau=2: R=2 94.8 (85.2; 96.1; 47) | R=3 96.6 (85.8; 95.8; 100) |
                          R=4 94.8 (89.0; 95.0; 100) | R=5 97.4 (86.8; 97.4; 100)
    separate m=300 tau=5: R=2 94.6 (60.2; 96.2; 26) | R=3 96.3 (60.1; 95.5; 76) |
                          R=4 93.9 (63.8; 94.7; 98) | R=5 97.4 (60.5; 97.2; 100)

(tau in points, on each model's accuracy.) One draw's interval covers test-sample noise
only: at tau = 5 points it covers the method's PGR 60-80 % of the time. A 12-point gap
(weak 0.65, W2S 0.72, ceiling 0.77, m = 300, shared, seed 2): pooled 93.9-96.9 % for R = 3,
5, 8 and tau 0 or 2 (at R = 3 and tau = 2 only 69 % of runs pass the gate, and the
interval is about 10 PGR units wide: t_2 = 4.30 on three gaps). The delta method covered as
well on these grids (the gap is large against its error wherever the gate passes); Fieller
is kept because it IS the pooled test (its coverage is that test's calibration, its gate
the pooled gap's) and is asymmetric where the ratio is.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist  # the standard library's
from typing import Iterable, Iterator, Sequence

import numpy as np

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


class Verdict(StrEnum):
    """Whether a PGR (or PGR difference) may be printed as a number; the value is the
    text report.json stores and the report prints."""
    OK = "ok"
    NOT_SIGNIFICANT = "not significant (ceiling does not beat weak)"
    UNDEFINED = "undefined"


class Direction(StrEnum):
    """The paired difference's claim; the value is the text report.json stores."""
    BETTER = "better"
    WORSE = "worse"
    NO_DIFFERENCE = "no detectable difference"


# Resample-index chunk: at most this many int64 indices in memory at once.
_CHUNK_ELEMS = 1 << 21


class _Result:
    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (floats, ints, lists, bools, str, None)."""
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class GapResult(_Result):
    weak_acc: float
    ceiling_acc: float
    gap: float                 # ceiling_acc - weak_acc on the full test set
    ci: list[float]            # percentile interval of the resampled gap
    significant: bool          # ci[0] > 0
    n_test: int
    n_resamples: int
    level: float


@dataclass(frozen=True)
class PGRResult(_Result):
    w2s_acc: float
    pgr: float | None          # point PGR; None when gap <= 0
    ci: list[float] | None     # over resamples with gap > 0; None when none kept
    dropped_frac: float        # share of resamples with gap <= 0
    verdict: Verdict
    above_100: bool            # point PGR > 1
    ci_above_100: bool         # whole PGR interval > 1
    gap: GapResult

    def describe(self) -> str:
        """The text a report should print in the PGR column."""
        pct = round(100 * self.gap.level)
        drop = f"{100 * self.dropped_frac:.1f} % of resamples dropped (gap <= 0)"
        if self.verdict == Verdict.UNDEFINED:
            return (f"undefined: ceiling {100 * self.gap.ceiling_acc:.1f} % does not beat "
                    f"weak {100 * self.gap.weak_acc:.1f} %")
        if self.verdict == Verdict.NOT_SIGNIFICANT:
            lo, hi = self.gap.ci
            return (f"{Verdict.NOT_SIGNIFICANT}: gap {100 * self.gap.gap:.1f} points "
                    f"({pct} % CI {100 * lo:.1f} to {100 * hi:.1f}); {drop}")
        assert self.pgr is not None and self.ci is not None
        s = (f"PGR {100 * self.pgr:.1f} % ({pct} % CI {100 * self.ci[0]:.1f} to "
             f"{100 * self.ci[1]:.1f}); {drop}")
        return s + ("; W2S beats the ceiling" if self.above_100 else "")


@dataclass(frozen=True)
class PairedDifferenceResult(_Result):
    student_acc: float
    reference_acc: float
    acc_diff: float                 # student_acc - reference_acc
    acc_diff_ci: list[float]
    significant: bool               # acc_diff_ci excludes 0 (two-sided)
    direction: Direction            # BETTER (ci[0] > 0) | WORSE (ci[1] < 0) | NO_DIFFERENCE
    pgr_diff: float | None          # acc_diff / gap; None unless pgr_verdict is OK
    pgr_diff_ci: list[float] | None # over resamples with gap > 0; None unless pgr_verdict is OK
    pgr_dropped_frac: float         # share of resamples with gap <= 0
    pgr_verdict: Verdict
    gap: GapResult

    def describe(self) -> str:
        pct = round(100 * self.gap.level)
        lo, hi = self.acc_diff_ci
        s = (f"{100 * self.acc_diff:+.1f} points ({pct} % CI {100 * lo:+.1f} to {100 * hi:+.1f}): "
             f"{self.direction}")
        if self.pgr_verdict == Verdict.OK:
            assert self.pgr_diff is not None and self.pgr_diff_ci is not None
            s += (f"; PGR {100 * self.pgr_diff:+.1f} points ({pct} % CI {100 * self.pgr_diff_ci[0]:+.1f} "
                  f"to {100 * self.pgr_diff_ci[1]:+.1f}; {100 * self.pgr_dropped_frac:.1f} % dropped)")
        else:
            s += f"; PGR difference {self.pgr_verdict}"
        return s


@dataclass(frozen=True)
class AccuracyDifferenceResult(_Result):
    acc: float                      # the model's accuracy (mean correctness)
    reference_acc: float
    acc_diff: float                 # acc - reference_acc
    acc_diff_ci: list[float]
    significant: bool               # acc_diff_ci excludes 0 (two-sided)
    direction: Direction
    n_test: int
    n_resamples: int
    level: float


@dataclass(frozen=True)
class SeedSpread(_Result):
    mean: float
    std: float | None   # ddof=1; None for one seed
    min: float
    max: float
    n_seeds: int


@dataclass(frozen=True)
class ErrorBreakdown(_Result):
    n_test: int
    n_weak_right: int
    n_weak_wrong: int
    weak_acc: float
    student_acc: float
    student_acc_on_weak_right: float | None
    student_acc_on_weak_wrong: float | None
    student_wrong_given_weak_right: float | None
    student_wrong_given_weak_wrong: float | None
    agreement: float                       # student-weak prediction agreement, all samples
    agreement_on_weak_right: float | None
    agreement_on_weak_wrong: float | None


@dataclass(frozen=True)
class SimulationResult(_Result):
    true_diff: float
    n_test: int
    n_runs: int
    n_resamples: int
    level: float
    base_acc: float
    weak_acc: float
    ceil_acc: float
    shared: float
    claim_better_rate: float      # share of runs with direction == "better" (one-sided)
    claim_worse_rate: float       # share of runs with direction == "worse"
    claim_any_rate: float         # share of runs with significant == True (two-sided)
    gap_significant_rate: float   # share of runs whose weak-ceiling gap is significant
    mean_acc_diff: float          # mean observed acc_diff over runs


# ---------------------------------------------------------------------------- helpers

def _correctness(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1:
        raise ValueError(f"{name}: values must lie in [0, 1]")
    return a


def _aligned(**arrays) -> list[np.ndarray]:
    out = [_correctness(v, k) for k, v in arrays.items()]
    sizes = {k: len(a) for k, a in zip(arrays, out)}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays must cover the same test samples, got lengths {sizes}")
    return out


def _check(n: int, level: float) -> None:
    if n < 1:
        raise ValueError("n (resamples) must be >= 1")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")


def _resample_indices(m: int, n: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """The resample stream: ``rng.integers(0, m, m)`` per resample, drawn in chunks of
    shape (b, m) (which leaves the stream unchanged); yields (first resample, chunk)."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMS // m)
    for s in range(0, n, rows):
        yield s, rng.integers(0, m, (min(rows, n - s), m))


def _resample_means(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Means of every row of X (k, m) on the same n bootstrap resamples of its columns:
    returns (k, n). Each chunk of the stream becomes a count matrix, so all rows (models,
    or models of many simulated runs) share the resamples."""
    k, m = X.shape
    out = np.empty((k, n))
    for s, idx in _resample_indices(m, n, seed):
        b = len(idx)
        counts = np.bincount((idx + (np.arange(b) * m)[:, None]).ravel(), minlength=b * m)
        out[:, s:s + b] = (X @ counts.reshape(b, m).T.astype(float)) / m
    return out


def _ci(vals: np.ndarray, level: float) -> list[float]:
    lo, hi = np.percentile(vals, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return [float(lo), float(hi)]


def _gap_result(weak_pt: float, ceil_pt: float, gap_b: np.ndarray, n_test: int, level: float) -> GapResult:
    ci = _ci(gap_b, level)
    return GapResult(weak_acc=float(weak_pt), ceiling_acc=float(ceil_pt), gap=float(ceil_pt - weak_pt),
                     ci=ci, significant=bool(ci[0] > 0), n_test=int(n_test), n_resamples=len(gap_b),
                     level=float(level))


def _ratio(num_b: np.ndarray, gap_b: np.ndarray, level: float) -> tuple[list[float] | None, float]:
    keep = gap_b > 0
    dropped = float(np.count_nonzero(~keep) / len(gap_b))
    return (_ci(num_b[keep] / gap_b[keep], level) if keep.any() else None), dropped


def _verdict(g: GapResult) -> str:
    if g.gap <= 0:
        return Verdict.UNDEFINED
    return Verdict.OK if g.significant else Verdict.NOT_SIGNIFICANT


def _direction(ci: list[float]) -> Direction:
    return Direction.BETTER if ci[0] > 0 else Direction.WORSE if ci[1] < 0 else Direction.NO_DIFFERENCE


def _paired_from_means(pts: Sequence[float], boots: np.ndarray, n_test: int, level: float) -> PairedDifferenceResult:
    """The paired-difference decision from point accuracies (student, reference, weak,
    ceiling) and their resampled means, boots of shape (4, n)."""
    s, r, w, c = (float(p) for p in pts)
    s_b, r_b, w_b, c_b = boots
    g = _gap_result(w, c, c_b - w_b, n_test, level)
    d_b = s_b - r_b
    ci = _ci(d_b, level)
    direction = _direction(ci)
    pgr_ci, dropped = _ratio(d_b, c_b - w_b, level)
    verdict = _verdict(g)
    ok = verdict == Verdict.OK
    return PairedDifferenceResult(
        student_acc=s, reference_acc=r, acc_diff=s - r, acc_diff_ci=ci,
        significant=direction != Direction.NO_DIFFERENCE, direction=direction,
        pgr_diff=(s - r) / (c - w) if ok else None, pgr_diff_ci=pgr_ci if ok else None,
        pgr_dropped_frac=dropped, pgr_verdict=verdict, gap=g)


# ---------------------------------------------------------------------------- public API

def accuracy_interval(c, n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> list[float]:
    """The percentile interval of one model's accuracy over the test-sample resamples."""
    _check(n, level)
    (c,) = _aligned(c=c)
    return _ci(np.concatenate([c[idx].mean(axis=1) for _, idx in _resample_indices(len(c), n, seed)]), level)


def gap(weak_c, ceil_c, n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> GapResult:
    """Ceiling minus weak accuracy with its paired-bootstrap interval; ``significant``
    iff the interval's lower bound is > 0."""
    _check(n, level)
    weak_c, ceil_c = _aligned(weak_c=weak_c, ceil_c=ceil_c)
    w_b, c_b = _resample_means(np.stack([weak_c, ceil_c]), n, seed)
    return _gap_result(weak_c.mean(), ceil_c.mean(), c_b - w_b, len(weak_c), level)


def pgr_stat(w2s_c, weak_c, ceil_c, n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> PGRResult:
    """PGR of one W2S student with its gap, interval, dropped share and verdict
    (see the module docstring for every definition)."""
    _check(n, level)
    w2s_c, weak_c, ceil_c = _aligned(w2s_c=w2s_c, weak_c=weak_c, ceil_c=ceil_c)
    a_b, w_b, c_b = _resample_means(np.stack([w2s_c, weak_c, ceil_c]), n, seed)
    a, w, c = float(w2s_c.mean()), float(weak_c.mean()), float(ceil_c.mean())
    g = _gap_result(w, c, c_b - w_b, len(w2s_c), level)
    point = (a - w) / (c - w) if c - w > 0 else None
    ci, dropped = _ratio(a_b - w_b, c_b - w_b, level)
    return PGRResult(w2s_acc=a, pgr=point, ci=ci, dropped_frac=dropped, verdict=_verdict(g),
                     above_100=point is not None and point > 1,
                     ci_above_100=ci is not None and ci[0] > 1, gap=g)


def paired_difference(student_c, reference_student_c, weak_c, ceil_c, n: int = N_RESAMPLES,
                      seed: int = SEED, level: float = LEVEL) -> PairedDifferenceResult:
    """student − reference (e.g. W2S on debate labels − W2S on plain weak labels): accuracy
    difference and PGR difference with paired-bootstrap intervals, the two-sided
    ``significant`` and the one-sided ``direction``."""
    _check(n, level)
    arrs = _aligned(student_c=student_c, reference_student_c=reference_student_c, weak_c=weak_c, ceil_c=ceil_c)
    X = np.stack(arrs)
    return _paired_from_means(X.mean(axis=1), _resample_means(X, n, seed), X.shape[1], level)


def accuracy_difference(c, reference_c, n: int = N_RESAMPLES, seed: int = SEED,
                        level: float = LEVEL) -> AccuracyDifferenceResult:
    """c − reference_c in accuracy, paired over test samples (the accuracy part of
    :func:`paired_difference`, for two models with no common weak model and ceiling)."""
    _check(n, level)
    X = np.stack(_aligned(c=c, reference_c=reference_c))
    a, r = (float(v) for v in X.mean(axis=1))
    a_b, r_b = _resample_means(X, n, seed)
    ci = _ci(a_b - r_b, level)
    direction = _direction(ci)
    return AccuracyDifferenceResult(acc=a, reference_acc=r, acc_diff=a - r, acc_diff_ci=ci,
                                    significant=direction != Direction.NO_DIFFERENCE, direction=direction,
                                    n_test=X.shape[1], n_resamples=n, level=float(level))


def _z(level: float, power: float) -> float:
    """z_{(1 + level) / 2} + z_{power}: the MDE in standard errors."""
    return NormalDist().inv_cdf((1 + level) / 2) + NormalDist().inv_cdf(power)


def minimum_detectable_difference(n_test: int, replicates: int = 1, p_a: float = 0.5, p_b: float = 0.5,
                                  tau: float = 0.0, level: float = LEVEL, power: float = 0.8) -> float:
    """The smallest true paired accuracy difference (a fraction: 0.05 = 5 points) that a
    two-sided test at ``1 - level`` detects with probability ``power``, on ``n_test`` test
    samples shared by ``replicates`` draws whose difference varies with standard deviation
    ``tau`` between draws; ``p_a``, ``p_b``: the two models' expected accuracies. The
    variance model (conservative; module docstring): per-sample difference variance
    ``p_a (1 - p_a) + p_b (1 - p_b)`` (independence) over ``n_test``, plus ``tau^2 / R``."""
    if n_test < 1 or replicates < 1:
        raise ValueError("n_test and replicates must be >= 1")
    if not (0 <= p_a <= 1 and 0 <= p_b <= 1) or tau < 0:
        raise ValueError("p_a and p_b must lie in [0, 1] and tau must be >= 0")
    if not 0 < level < 1 or not 0 < power < 1:
        raise ValueError("level and power must lie in (0, 1)")
    var_d = p_a * (1 - p_a) + p_b * (1 - p_b)
    return float(_z(level, power) * np.sqrt(var_d / n_test + tau ** 2 / replicates))


def test_samples_needed(effect: float, replicates: int = 1, p_a: float = 0.5, p_b: float = 0.5, tau: float = 0.0,
                        level: float = LEVEL, power: float = 0.8) -> int | None:
    """The smallest n_test whose :func:`minimum_detectable_difference` is at most
    ``effect``; None when no n_test suffices (``tau^2 / R`` alone is too large: more
    replicates are needed)."""
    room = (effect / _z(level, power)) ** 2 - tau ** 2 / replicates
    if room <= 0:
        return None
    n = max(1, int(np.ceil((p_a * (1 - p_a) + p_b * (1 - p_b)) / room)))
    while minimum_detectable_difference(n, replicates, p_a, p_b, tau, level, power) > effect:  # float rounding
        n += 1
    return n


def seed_spread(per_seed_accuracies: Iterable[float]) -> SeedSpread:
    """Spread of a student's test accuracy over its training seeds."""
    a = np.asarray(list(per_seed_accuracies), dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("need at least one per-seed accuracy")
    return SeedSpread(mean=float(a.mean()), std=float(a.std(ddof=1)) if a.size > 1 else None,
                      min=float(a.min()), max=float(a.max()), n_seeds=int(a.size))


def error_breakdown(student_c, weak_c, student_pred, weak_pred) -> ErrorBreakdown:
    """Student accuracy where the weak labeller is right / wrong, the conditional error
    rates of the deception view, and student-weak agreement (imitation). ``weak_c`` and
    ``weak_pred`` must be 0/1; ``student_c`` and ``student_pred`` may be seed averages
    (fraction of seeds correct / predicting class 1)."""
    student_c, weak_c, student_pred, weak_pred = _aligned(
        student_c=student_c, weak_c=weak_c, student_pred=student_pred, weak_pred=weak_pred)
    for name, a in (("weak_c", weak_c), ("weak_pred", weak_pred)):
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must be 0/1 (hard predictions of the weak labeller)")
    right = weak_c == 1
    agree = student_pred * weak_pred + (1 - student_pred) * (1 - weak_pred)

    def on(x: np.ndarray, mask: np.ndarray) -> float | None:
        return float(x[mask].mean()) if mask.any() else None

    acc_r, acc_w = on(student_c, right), on(student_c, ~right)
    return ErrorBreakdown(
        n_test=len(weak_c), n_weak_right=int(right.sum()), n_weak_wrong=int((~right).sum()),
        weak_acc=float(weak_c.mean()), student_acc=float(student_c.mean()),
        student_acc_on_weak_right=acc_r, student_acc_on_weak_wrong=acc_w,
        student_wrong_given_weak_right=None if acc_r is None else 1 - acc_r,
        student_wrong_given_weak_wrong=None if acc_w is None else 1 - acc_w,
        agreement=float(agree.mean()), agreement_on_weak_right=on(agree, right),
        agreement_on_weak_wrong=on(agree, ~right))


@dataclass(frozen=True)
class CapaResult(_Result):
    capa: float | None              # (observed - expected) / (1 - expected); None when expected == 1
    ci: list[float] | None          # percentile interval over the resamples with expected < 1
    observed: float                 # cp_obs: mean of p_a p_b + (1 - p_a)(1 - p_b)
    expected: float                 # cp_exp: q_a q_b + (1 - q_a)(1 - q_b)
    gold_prob_a: float              # q_a: mean probability model a puts on the gold label
    gold_prob_b: float
    n: int
    n_resamples: int
    level: float


def _kappa(obs: np.ndarray, qa: np.ndarray, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    exp = qa * qb + (1 - qa) * (1 - qb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(exp < 1, (obs - exp) / np.where(exp < 1, 1 - exp, 1.0), np.nan), exp


def capa(p_a, p_b, gold, n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> CapaResult:
    """CAPA (kappa_p, Goel et al. 2025) of two models on a binary task from their
    P(label = 1) per sample and the gold labels, with its paired-bootstrap interval
    (module docstring)."""
    _check(n, level)
    p_a, p_b, gold = _aligned(p_a=p_a, p_b=p_b, gold=gold)
    if not np.all((gold == 0) | (gold == 1)):
        raise ValueError("gold must be 0/1 labels")
    X = np.stack([p_a * p_b + (1 - p_a) * (1 - p_b),          # per-sample agreement
                  np.where(gold == 1, p_a, 1 - p_a), np.where(gold == 1, p_b, 1 - p_b)])
    obs, qa, qb = X.mean(axis=1)
    k, exp = _kappa(np.array(obs), np.array(qa), np.array(qb))
    k_b, _ = _kappa(*_resample_means(X, n, seed))
    kept = k_b[np.isfinite(k_b)]
    return CapaResult(capa=float(k) if np.isfinite(k) else None, ci=_ci(kept, level) if kept.size else None,
                      observed=float(obs), expected=float(exp), gold_prob_a=float(qa), gold_prob_b=float(qb),
                      n=len(gold), n_resamples=n, level=float(level))


@dataclass(frozen=True)
class RateResult(_Result):
    rate: float | None              # sum(hits) / sum(trials); None when there is no trial
    ci: list[float] | None          # percentile interval over the sample resamples with a trial
    hits: float
    trials: float
    n_samples: int                  # samples with at least one trial
    n_resamples: int
    level: float


def rate(hits, trials, n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> RateResult:
    """A share pooled over every sample's trials (``hits[i]`` of ``trials[i]``), with
    its interval over the test-sample resamples (module docstring)."""
    _check(n, level)
    h, t = (np.asarray(x, dtype=float) for x in (hits, trials))
    if h.shape != t.shape or h.ndim != 1 or h.size == 0:
        raise ValueError("hits and trials must be non-empty 1-D arrays of one length")
    if np.any(t < 0) or np.any(h < 0) or np.any(h > t):
        raise ValueError("need 0 <= hits <= trials")
    h_b, t_b = _resample_means(np.stack([h, t]), n, seed)
    keep = t_b > 0
    total = float(t.sum())
    return RateResult(rate=float(h.sum() / total) if total > 0 else None,
                      ci=_ci(h_b[keep] / t_b[keep], level) if total > 0 and keep.any() else None,
                      hits=float(h.sum()), trials=total, n_samples=int(np.count_nonzero(t)),
                      n_resamples=n, level=float(level))


def _check_probabilities(n_test: int, n_runs: int, **ps: float) -> None:
    for name, p in ps.items():
        if not np.all((0 <= np.asarray(p)) & (np.asarray(p) <= 1)):
            raise ValueError(f"{name} must lie in [0, 1], got {p}")
    if n_test < 1 or n_runs < 1:
        raise ValueError("n_test and n_runs must be >= 1")


def _student_pair(rng: np.random.Generator, common: np.ndarray, u: np.ndarray,
                  p_deb, p_ref) -> tuple[np.ndarray, np.ndarray]:
    """0/1 correctness of the debate and reference students: where ``common``, both use
    the sample's uniform ``u``; elsewhere each draws its own (reference first)."""
    u_ref = np.where(common, u, rng.random(u.shape))
    u_deb = np.where(common, u, rng.random(u.shape))
    return u_deb < p_deb, u_ref < p_ref


def _simulate_runs(true_diff: float, n_test: int, n_runs: int, base_acc: float, seed: int,
                   weak_acc: float, ceil_acc: float, shared: float) -> np.ndarray:
    """(n_runs, 4, n_test) 0/1 correctness: debate student, reference student, weak, ceiling
    (the argument order of paired_difference). See the module docstring for the model."""
    p_ref, p_deb = base_acc, base_acc + true_diff
    _check_probabilities(n_test, n_runs, **{"base_acc": p_ref, "base_acc + true_diff": p_deb, "weak_acc": weak_acc,
                                           "ceil_acc": ceil_acc, "shared": shared})
    rng = np.random.default_rng(seed)
    shape = (n_runs, n_test)
    common = rng.random(shape) < shared
    u = rng.random(shape)
    deb, ref = _student_pair(rng, common, u, p_deb, p_ref)
    return np.stack([deb, ref, rng.random(shape) < weak_acc,
                     rng.random(shape) < ceil_acc], axis=1).astype(float)


def _simulate(true_diff: float, n_test: int, n_runs: int, base_acc: float = 0.7, seed: int = 0, *,
              weak_acc: float = 0.6, ceil_acc: float = 0.85, shared: float = 0.5,
              n_resamples: int = N_RESAMPLES, level: float = LEVEL,
              boot_seed: int = SEED) -> tuple[np.ndarray, list[PairedDifferenceResult]]:
    _check(n_resamples, level)
    data = _simulate_runs(true_diff, n_test, n_runs, base_acc, seed, weak_acc, ceil_acc, shared)
    # All runs share the boot_seed index stream, so one pass resamples every run.
    boots = _resample_means(data.reshape(n_runs * 4, n_test), n_resamples, boot_seed)
    boots = boots.reshape(n_runs, 4, n_resamples)
    pts = data.mean(axis=2)
    return data, [_paired_from_means(pts[r], boots[r], n_test, level) for r in range(n_runs)]


def simulate_claim_rate(true_diff: float, n_test: int, n_runs: int, base_acc: float = 0.7, seed: int = 0, *,
                        weak_acc: float = 0.6, ceil_acc: float = 0.85, shared: float = 0.5,
                        n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                        boot_seed: int = SEED) -> SimulationResult:
    """How often the paired_difference decision claims "debate beats plain" (one-sided)
    and "a difference" (two-sided) when the debate student's true accuracy exceeds the
    reference's by ``true_diff``; ``seed`` draws the data, ``boot_seed`` the resamples."""
    _, res = _simulate(true_diff, n_test, n_runs, base_acc, seed, weak_acc=weak_acc, ceil_acc=ceil_acc,
                       shared=shared, n_resamples=n_resamples, level=level, boot_seed=boot_seed)
    return SimulationResult(
        true_diff=float(true_diff), n_test=int(n_test), n_runs=int(n_runs), n_resamples=int(n_resamples),
        level=float(level), base_acc=float(base_acc), weak_acc=float(weak_acc), ceil_acc=float(ceil_acc),
        shared=float(shared),
        claim_better_rate=sum(r.direction == Direction.BETTER for r in res) / n_runs,
        claim_worse_rate=sum(r.direction == Direction.WORSE for r in res) / n_runs,
        claim_any_rate=sum(r.significant for r in res) / n_runs,
        gap_significant_rate=sum(r.gap.significant for r in res) / n_runs,
        mean_acc_diff=float(np.mean([r.acc_diff for r in res])))


# ---------------------------------------------------------------------------- replicates

@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` (> 0, not necessarily whole)
    degrees of freedom: Newton's method on the CDF from the normal quantile (the CDF is
    concave above 0, so the iterates rise monotonically to the root), the CDF by Simpson's
    rule on the density (error < 1e-9 for the levels the report uses)."""
    if not 0.5 < p < 1 or not df > 0:
        raise ValueError(f"t_quantile needs 0.5 < p < 1 and df > 0, got p={p}, df={df}")
    z = NormalDist().inv_cdf(p)
    if df > 1e7:
        return z
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def density(t):
        return np.exp(log_c - (df + 1) / 2 * np.log1p(np.square(t) / df))

    x = z
    for _ in range(100):
        grid = np.linspace(0.0, x, 4001)
        w = np.ones(4001)
        w[1:-1:2], w[2:-1:2] = 4, 2
        cdf = 0.5 + float(density(grid) @ w) * (x / 4000) / 3
        step = (p - cdf) / float(density(x))
        x += step
        if step < 1e-10 * max(1.0, x):
            break
    return float(x)


@dataclass(frozen=True)
class PooledDifference(_Result):
    estimate: float                   # mean over replicates of each replicate's difference
    ci: list[float]                   # estimate -/+ sqrt(t_{R-1}² s2 / R + z² v_common)
    significant: bool                 # ci excludes 0 (two-sided)
    direction: Direction              # BETTER (ci[0] > 0) | WORSE (ci[1] < 0) | NO_DIFFERENCE
    se: float                         # sqrt(s2 / R + v_common)
    tau: float                        # between-replicate sd beyond test-sample noise: sqrt(max(0, s2 - v_within))
    v_test: float                     # test-sample variance of the estimate (bootstrap)
    per_replicate: list[float]        # each replicate's difference
    per_replicate_direction: list[Direction]  # each replicate's one-draw verdict
    shared_test: bool                 # every replicate scored on the same test samples
    n_replicates: int
    n_test: int
    n_resamples: int
    level: float

    def stability(self) -> dict[str, int]:
        """How many replicates' one-draw verdicts read each way."""
        return {str(d): self.per_replicate_direction.count(d) for d in Direction
                if d in self.per_replicate_direction}

    def describe_stability(self) -> str:
        """E.g. "worse in 3 of 3 replicates", or "worse in 2, no detectable difference in 1 of 3"."""
        parts = sorted(self.stability().items(), key=lambda kv: -kv[1])
        return ", ".join(f"{d} in {n}" for d, n in parts) + f" of {self.n_replicates} replicates"


def _pooled_from_means(d: np.ndarray, d_b: np.ndarray, n_test: int, shared_test: bool,
                       level: float) -> PooledDifference:
    """The pooled decision from each replicate's point difference ``d`` (R,) and its
    test-sample resamples ``d_b`` (R, n) (see the module docstring)."""
    R, n = d_b.shape
    est = float(d.mean())
    v_test = float(d_b.mean(axis=0).var(ddof=1))
    v_within = float((d_b - d_b.mean(axis=0)).var(axis=1, ddof=1).sum() / (R - 1))
    s2 = float(d.var(ddof=1))
    common = max(0.0, v_test - v_within / R)
    q = (1 + level) / 2
    half = math.sqrt(t_quantile(q, R - 1) ** 2 * s2 / R + NormalDist().inv_cdf(q) ** 2 * common)
    ci = [est - half, est + half]
    direction = Direction.BETTER if ci[0] > 0 else Direction.WORSE if ci[1] < 0 else Direction.NO_DIFFERENCE
    lo, hi = np.percentile(d_b, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=1)
    per_dir = [Direction.BETTER if l > 0 else Direction.WORSE if h < 0 else Direction.NO_DIFFERENCE
               for l, h in zip(lo, hi)]
    return PooledDifference(
        estimate=est, ci=[float(v) for v in ci], significant=direction != Direction.NO_DIFFERENCE,
        direction=direction, se=math.sqrt(s2 / R + common), tau=math.sqrt(max(0.0, s2 - v_within)), v_test=v_test,
        per_replicate=[float(v) for v in d], per_replicate_direction=per_dir, shared_test=shared_test,
        n_replicates=R, n_test=int(n_test), n_resamples=n, level=float(level))


def _replicate_seeds(shared_test: bool, R: int, seed: int) -> list[int]:
    """The resample stream of each replicate: one stream (the same indices) for a shared
    test set, an independent one per replicate otherwise."""
    return [seed] * R if shared_test else [seed + r for r in range(R)]


def pooled_difference(x: Sequence, y: Sequence, test_ids: Sequence[Sequence[str]],
                      n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> PooledDifference:
    """x − y pooled over replicates (x[r], y[r]: replicate r's aligned per-test-sample
    correctness; test_ids[r]: its test sample ids, in that order), with the two-level
    interval of the module docstring."""
    _check(n, level)
    R = len(x)
    if R < 2 or len(y) != R or len(test_ids) != R:
        raise ValueError("pooled_difference needs x, y and test_ids for the same >= 2 replicates")
    pairs = [_aligned(x=a, y=b) for a, b in zip(x, y)]
    for (a, _), ids in zip(pairs, test_ids):
        if len(ids) != len(a):
            raise ValueError("test_ids must name every test sample of its replicate")
    shared = all(list(ids) == list(test_ids[0]) for ids in test_ids)
    d, d_b = [], []
    for (a, b), s in zip(pairs, _replicate_seeds(shared, R, seed)):
        a_b, b_b = _resample_means(np.stack([a, b]), n, s)
        d.append(a.mean() - b.mean())
        d_b.append(a_b - b_b)
    m = len(pairs[0][0]) if shared else min(len(a) for a, _ in pairs)
    return _pooled_from_means(np.array(d), np.stack(d_b), m, shared, level)


@dataclass(frozen=True)
class ReplicateSimulationResult(_Result):
    true_diff: float
    tau: float
    n_test: int
    n_runs: int
    replicates: int
    shared_test: bool
    n_resamples: int
    level: float
    base_acc: float
    shared: float
    one_draw_claim_rate: float    # share of runs whose replicate 0 alone (paired_difference) claims a difference
    pooled_claim_rate: float      # share of runs whose pooled interval excludes 0 (two-sided)
    pooled_better_rate: float
    pooled_worse_rate: float
    pooled_coverage: float        # share of runs whose pooled interval covers true_diff
    mean_ci_width: float          # mean width of the pooled interval
    mean_tau: float               # mean estimated between-replicate sd


def _simulate_replicate_runs(true_diff: float, tau: float, n_test: int, n_runs: int, replicates: int,
                             shared_test: bool, base_acc: float, seed: int, shared: float) -> np.ndarray:
    """(n_runs, replicates, 2, n_test) 0/1 correctness of the debate and the reference
    student in every replicate of every simulated run (see the module docstring)."""
    _check_probabilities(n_test, n_runs, base_acc=base_acc, shared=shared)
    if replicates < 2 or tau < 0:
        raise ValueError("replicates must be >= 2 and tau >= 0")
    rng = np.random.default_rng(seed)
    shape = (n_runs, replicates, n_test)
    p_deb = np.clip(base_acc + true_diff + tau * rng.standard_normal((n_runs, replicates, 1)), 0, 1)
    u = rng.random((n_runs, 1 if shared_test else replicates, n_test))  # a test sample's difficulty
    common = rng.random(shape) < shared
    deb, ref = _student_pair(rng, common, np.broadcast_to(u, shape), p_deb, base_acc)
    return np.stack([deb, ref], axis=2).astype(float)


def simulate_replicate_claim_rate(true_diff: float, tau: float, n_test: int, n_runs: int, replicates: int = 3,
                                  shared_test: bool = True, base_acc: float = 0.7, seed: int = 0, *,
                                  shared: float = 0.5, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                                  boot_seed: int = SEED) -> ReplicateSimulationResult:
    """How often one draw's test-sample interval (paired_difference on replicate 0) and
    the pooled two-level interval (pooled_difference over every replicate) claim a
    difference when the debate student's accuracy exceeds the reference's by
    ``true_diff`` on average over draws and by ``true_diff + u_r``, u_r ~ N(0, tau²), in
    replicate r. ``seed`` draws the data, ``boot_seed`` the resamples (as in the report)."""
    _check(n_resamples, level)
    data = _simulate_replicate_runs(true_diff, tau, n_test, n_runs, replicates, shared_test, base_acc, seed, shared)
    d_b = np.empty((n_runs, replicates, n_resamples))
    for r, s in enumerate(_replicate_seeds(shared_test, replicates, boot_seed)):
        # every run shares each replicate's index stream, so one pass resamples them all
        b = _resample_means(data[:, r].reshape(n_runs * 2, n_test), n_resamples, s).reshape(n_runs, 2, -1)
        d_b[:, r] = b[:, 0] - b[:, 1]
    d = data[:, :, 0].mean(axis=2) - data[:, :, 1].mean(axis=2)
    res = [_pooled_from_means(d[i], d_b[i], n_test, shared_test, level) for i in range(n_runs)]
    return ReplicateSimulationResult(
        true_diff=float(true_diff), tau=float(tau), n_test=int(n_test), n_runs=int(n_runs),
        replicates=int(replicates), shared_test=bool(shared_test), n_resamples=int(n_resamples),
        level=float(level), base_acc=float(base_acc), shared=float(shared),
        one_draw_claim_rate=sum(p.per_replicate_direction[0] != Direction.NO_DIFFERENCE for p in res) / n_runs,
        pooled_claim_rate=sum(p.significant for p in res) / n_runs,
        pooled_better_rate=sum(p.direction == Direction.BETTER for p in res) / n_runs,
        pooled_worse_rate=sum(p.direction == Direction.WORSE for p in res) / n_runs,
        pooled_coverage=sum(p.ci[0] <= true_diff <= p.ci[1] for p in res) / n_runs,
        mean_ci_width=float(np.mean([p.ci[1] - p.ci[0] for p in res])),
        mean_tau=float(np.mean([p.tau for p in res])))


# ---------------------------------------------------------------------------- pooled PGR

@dataclass(frozen=True)
class PooledPGR(_Result):
    pgr: float | None                 # mean_r(w2s - weak) / mean_r(ceiling - weak); None when the pooled gap <= 0
    ci: list[float] | None            # Fieller over the two-level test; None unless verdict is OK
    verdict: Verdict                  # gated on the pooled gap (gap.ci[0] > 0), as one draw's PGR on its gap
    numerator: float                  # mean_r(acc(w2s) - acc(weak))
    per_replicate: list[float | None] # each replicate's own point PGR (None where its gap <= 0)
    above_100: bool                   # point PGR > 1
    gap: PooledDifference             # ceiling - weak pooled: the gate

    def describe(self) -> str:
        pct, n = round(100 * self.gap.level), self.gap.n_replicates
        if self.verdict == Verdict.UNDEFINED:
            return f"undefined: pooled over {n} replicates the ceiling does not beat weak"
        if self.verdict == Verdict.NOT_SIGNIFICANT:
            lo, hi = self.gap.ci
            return (f"{Verdict.NOT_SIGNIFICANT}: pooled gap {100 * self.gap.estimate:.1f} points "
                    f"({pct} % CI {100 * lo:.1f} to {100 * hi:.1f}) over {n} replicates")
        assert self.pgr is not None and self.ci is not None
        return (f"PGR {100 * self.pgr:.1f} % ({pct} % CI {100 * self.ci[0]:.1f} to {100 * self.ci[1]:.1f}), "
                f"pooled over {n} replicates" + ("; W2S beats the ceiling" if self.above_100 else ""))


def _forms(n: np.ndarray, g: np.ndarray, n_b: np.ndarray, g_b: np.ndarray) -> tuple[np.ndarray, ...]:
    """The two-level variance parts of ``d(theta) = n - theta g`` as 2x2 forms over the
    leading (batch) axes: ``part(theta) = M[0,0] - 2 theta M[0,1] + theta² M[1,1]``.
    n, g: (..., R) per-replicate points; n_b, g_b: (..., R, B) their resamples. Returns
    (E, S, V) with E the squared estimate, S the sample covariance over replicates (s2) and
    V = T - W / R, T the test-sample covariance of the replicate means (v_test) and W the
    within part (v_within), exactly the terms of _pooled_from_means."""
    R = n.shape[-1]

    def form(xx, xy, yy):
        return np.stack([np.stack([xx, xy], -1), np.stack([xy, yy], -1)], -2)

    def cov(x, y, axis):  # ddof=1
        return ((x - x.mean(axis, keepdims=True)) * (y - y.mean(axis, keepdims=True))).sum(axis) / (x.shape[axis] - 1)

    N, G = n.mean(-1), g.mean(-1)
    E = form(N * N, N * G, G * G)
    S = form(cov(n, n, -1), cov(n, g, -1), cov(g, g, -1))
    mn, mg = n_b.mean(-2), g_b.mean(-2)       # (..., B)
    T = form(cov(mn, mn, -1), cov(mn, mg, -1), cov(mg, mg, -1))
    en, eg = n_b - mn[..., None, :], g_b - mg[..., None, :]
    W = form(*(cov(x, y, -1).sum(-1) / (R - 1) for x, y in ((en, en), (en, eg), (eg, eg))))
    return E, S, T - W / R


def _fieller(n: np.ndarray, g: np.ndarray, n_b: np.ndarray, g_b: np.ndarray, level: float,
             gate: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pooled PGR and its interval by test inversion (module docstring), batched over the
    leading axes: (point, lo, hi, delta_half). lo/hi are NaN where the pooled gap is not
    significant (``gate`` False; computed here unless given): the interval is then
    unbounded or empty. delta_half is the delta method's half-width, kept for the
    simulation's comparison only."""
    R = n.shape[-1]
    q = (1 + level) / 2
    kt, kz = t_quantile(q, R - 1) ** 2 / R, NormalDist().inv_cdf(q) ** 2
    E, S, V = _forms(n, g, n_b, g_b)
    N, G = n.mean(-1), g.mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = np.where(G > 0, N / np.where(G > 0, G, 1.0), np.nan)
    # the gate: the pooled gap's two-level lower bound > 0 (its own _pooled_from_means)
    if gate is None:
        gate = G - np.sqrt(kt * S[..., 1, 1] + kz * np.maximum(0.0, V[..., 1, 1])) > 0
    lo, hi = np.full(N.shape, np.inf), np.full(N.shape, -np.inf)
    # theta is accepted iff est² <= kt s2 + kz max(0, v): the union of {F0 <= 0} (v < 0)
    # and {F1 <= 0} (v >= 0); under the gate both are convex and F0 holds the point.
    for F in (E - kt * S, E - kt * S - kz * V):
        a, b, c = F[..., 1, 1], F[..., 0, 1], F[..., 0, 0]
        disc = b * b - a * c
        ok = gate & (a > 0) & (disc >= 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.sqrt(np.where(ok, disc, 0.0))
            lo = np.where(ok, np.minimum(lo, (b - r) / a), lo)
            hi = np.where(ok, np.maximum(hi, (b + r) / a), hi)
    lo, hi = np.where(gate, lo, np.nan), np.where(gate, hi, np.nan)
    pt = np.where(np.isfinite(point), point, 0.0)
    var_pt = (S[..., 0, 0] - 2 * pt * S[..., 0, 1] + pt ** 2 * S[..., 1, 1],
              V[..., 0, 0] - 2 * pt * V[..., 0, 1] + pt ** 2 * V[..., 1, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        delta_half = np.sqrt(kt * var_pt[0] + kz * np.maximum(0.0, var_pt[1])) / G
    return point, lo, hi, delta_half


def _replicate_resamples(arrays: list[list[np.ndarray]], test_ids: Sequence[Sequence[str]], n: int,
                         seed: int) -> tuple[list[np.ndarray], list[np.ndarray], bool, int]:
    """Each replicate's point means and resampled means of its models (arrays[r]: that
    replicate's aligned correctness arrays), on the streams of _replicate_seeds."""
    R = len(arrays)
    for arrs, ids in zip(arrays, test_ids):
        if len(ids) != len(arrs[0]):
            raise ValueError("test_ids must name every test sample of its replicate")
    shared = all(list(ids) == list(test_ids[0]) for ids in test_ids)
    pts = [np.stack(a).mean(axis=1) for a in arrays]
    boots = [_resample_means(np.stack(a), n, s) for a, s in zip(arrays, _replicate_seeds(shared, R, seed))]
    m = len(arrays[0][0]) if shared else min(len(a[0]) for a in arrays)
    return pts, boots, shared, m


def pooled_pgr(w2s: Sequence, weak: Sequence, ceil: Sequence, test_ids: Sequence[Sequence[str]],
               n: int = N_RESAMPLES, seed: int = SEED, level: float = LEVEL) -> PooledPGR:
    """PGR pooled over replicates (w2s[r], weak[r], ceil[r]: replicate r's aligned
    per-test-sample correctness; test_ids[r] its ids, in that order): the ratio of the
    pooled means, its Fieller interval under the two-level procedure of
    :func:`pooled_difference`, gated on the pooled gap (module docstring)."""
    _check(n, level)
    R = len(w2s)
    if R < 2 or len(weak) != R or len(ceil) != R or len(test_ids) != R:
        raise ValueError("pooled_pgr needs w2s, weak, ceil and test_ids for the same >= 2 replicates")
    arrays = [_aligned(w2s=a, weak=w, ceil=c) for a, w, c in zip(w2s, weak, ceil)]
    pts, boots, shared, m = _replicate_resamples(arrays, test_ids, n, seed)
    num = np.array([a - w for a, w, _ in pts])
    den = np.array([c - w for _, w, c in pts])
    num_b = np.stack([a - w for a, w, _ in boots])
    den_b = np.stack([c - w for _, w, c in boots])
    gap_res = _pooled_from_means(den, den_b, m, shared, level)
    G = float(den.mean())
    # one gate: the pooled gap's own decision (its lower bound > 0)
    point, lo, hi, _ = (float(v) for v in _fieller(num, den, num_b, den_b, level, np.array(gap_res.ci[0] > 0)))
    verdict = (Verdict.UNDEFINED if G <= 0 else
               Verdict.OK if gap_res.ci[0] > 0 and math.isfinite(lo) else Verdict.NOT_SIGNIFICANT)
    return PooledPGR(
        pgr=point if G > 0 else None, ci=[lo, hi] if verdict == Verdict.OK else None, verdict=verdict,
        numerator=float(num.mean()),
        per_replicate=[float(a / b) if b > 0 else None for a, b in zip(num, den)],
        above_100=G > 0 and point > 1, gap=gap_res)


@dataclass(frozen=True)
class PooledPGRSimulationResult(_Result):
    true_pgr: float               # (w2s_acc - weak_acc) / (ceil_acc - weak_acc): the ratio of expected accuracies
    tau: float
    n_test: int
    n_runs: int
    replicates: int
    shared_test: bool
    n_resamples: int
    level: float
    weak_acc: float
    w2s_acc: float
    ceil_acc: float
    shared: float
    pooled_ok_rate: float         # share of runs whose pooled gap is significant (the PGR is printed)
    pooled_coverage: float        # among those, share whose pooled interval covers true_pgr
    pooled_miss_low: float        # among those, share whose interval lies below true_pgr
    pooled_miss_high: float
    mean_ci_width: float          # mean width of the pooled interval (among those)
    delta_coverage: float         # the delta method's interval on the same runs (rejected estimator)
    one_draw_ok_rate: float       # share of runs whose replicate 0 alone has a significant gap
    one_draw_coverage: float      # among those, share whose pgr_stat interval covers true_pgr


def _simulate_pgr_runs(tau: float, n_test: int, n_runs: int, replicates: int, shared_test: bool, weak_acc: float,
                       w2s_acc: float, ceil_acc: float, seed: int, shared: float) -> np.ndarray:
    """(n_runs, replicates, 3, n_test) 0/1 correctness of the W2S student, the weak model
    and the ceiling (module docstring)."""
    _check_probabilities(n_test, n_runs, weak_acc=weak_acc, w2s_acc=w2s_acc, ceil_acc=ceil_acc, shared=shared)
    if replicates < 2 or tau < 0:
        raise ValueError("replicates must be >= 2 and tau >= 0")
    rng = np.random.default_rng(seed)
    shape = (n_runs, replicates, 3, n_test)
    p = np.array([w2s_acc, weak_acc, ceil_acc])[:, None]
    p = np.clip(p + tau * rng.standard_normal((n_runs, replicates, 3, 1)), 0, 1)
    u = rng.random((n_runs, 1 if shared_test else replicates, 1, n_test))  # a test sample's difficulty
    own = np.where(rng.random(shape) < shared, np.broadcast_to(u, shape), rng.random(shape))
    return (own < p).astype(float)


def simulate_pooled_pgr_coverage(tau: float, n_test: int, n_runs: int, replicates: int = 3,
                                 shared_test: bool = True, seed: int = 0, *, weak_acc: float = 0.6,
                                 w2s_acc: float = 0.7, ceil_acc: float = 0.85, shared: float = 0.5,
                                 n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                                 boot_seed: int = SEED) -> PooledPGRSimulationResult:
    """How often the pooled PGR interval (:func:`pooled_pgr`) and one draw's
    (:func:`pgr_stat` on replicate 0) cover the true PGR when each replicate draws the
    three models' accuracies around their expected values with sd ``tau`` each,
    independently. ``seed`` draws the data, ``boot_seed`` the resamples (as in the report)."""
    _check(n_resamples, level)
    if not weak_acc < ceil_acc:
        raise ValueError("the simulation needs ceil_acc > weak_acc (a defined PGR)")
    data = _simulate_pgr_runs(tau, n_test, n_runs, replicates, shared_test, weak_acc, w2s_acc, ceil_acc, seed,
                              shared)
    boots = np.empty((n_runs, replicates, 3, n_resamples))
    for r, s in enumerate(_replicate_seeds(shared_test, replicates, boot_seed)):
        # every run shares each replicate's index stream, so one pass resamples them all
        boots[:, r] = _resample_means(data[:, r].reshape(n_runs * 3, n_test), n_resamples, s).reshape(n_runs, 3, -1)
    pts = data.mean(axis=3)
    num, den = pts[..., 0] - pts[..., 1], pts[..., 2] - pts[..., 1]
    num_b, den_b = boots[:, :, 0] - boots[:, :, 1], boots[:, :, 2] - boots[:, :, 1]
    point, lo, hi, delta = _fieller(num, den, num_b, den_b, level)
    truth = (w2s_acc - weak_acc) / (ceil_acc - weak_acc)
    ok = np.isfinite(lo)
    k = max(1, int(ok.sum()))
    # one draw: replicate 0's PGR interval over its resamples with gap > 0, gated on its gap
    g0, n0 = den_b[:, 0], num_b[:, 0]
    gap_lo = np.percentile(g0, (1 - level) / 2 * 100, axis=1)
    one_ok = (den[:, 0] > 0) & (gap_lo > 0)
    one_cover = [bool(_ci(n0[i][g0[i] > 0] / g0[i][g0[i] > 0], level)[0] <= truth
                      <= _ci(n0[i][g0[i] > 0] / g0[i][g0[i] > 0], level)[1]) for i in np.flatnonzero(one_ok)]
    return PooledPGRSimulationResult(
        true_pgr=float(truth), tau=float(tau), n_test=int(n_test), n_runs=int(n_runs), replicates=int(replicates),
        shared_test=bool(shared_test), n_resamples=int(n_resamples), level=float(level), weak_acc=float(weak_acc),
        w2s_acc=float(w2s_acc), ceil_acc=float(ceil_acc), shared=float(shared),
        pooled_ok_rate=float(ok.mean()), pooled_coverage=float(((lo <= truth) & (truth <= hi) & ok).sum() / k),
        pooled_miss_low=float(((hi < truth) & ok).sum() / k), pooled_miss_high=float(((lo > truth) & ok).sum() / k),
        mean_ci_width=float(np.mean((hi - lo)[ok])) if ok.any() else float("nan"),
        delta_coverage=float((ok & (np.abs(point - truth) <= delta)).sum() / k),
        one_draw_ok_rate=float(one_ok.mean()),
        one_draw_coverage=float(np.mean(one_cover)) if one_cover else float("nan"))
