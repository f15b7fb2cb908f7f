"""Online log template mining: turn a stream of log messages into stable templates.

Public API (everything else is internal)::

    from vigil.analytics.logtemplates import TemplateMiner, MinerConfig, MaskPattern

    miner = TemplateMiner()                 # one miner per log source
    m = miner.add("Failed password for root from 10.0.0.1 port 22 ssh2")
    m.template_id    # int, stable; prefix it with the source outside ("sshd:12")
    m.template       # "Failed password for root from <*> port <*> ssh2"
    m.parameters     # ("10.0.0.1", "22"): what each <*> stands for, in order
    m.change         # "new" | "changed" | "none"

    miner.match(message)       # classify without learning -> Match | None
    miner.resolve(old_id)      # follow merges: the id of the template that absorbed old_id
    miner.template(some_id)    # current text of a (resolved) template
    miner.templates()          # [TemplateInfo(template_id, template, count, successor)]
    state = miner.snapshot()   # JSON-serialisable dict
    miner = TemplateMiner.restore(state)   # continues with the same ids and behaviour

Templates sharpen as lines arrive: a word that turns out to vary becomes ``<*>``, and templates
that become the same merge into the oldest one; the others keep a ``successor`` pointer, so ids
handed out earlier stay valid through :meth:`TemplateMiner.resolve`. Ids are deterministic for a
given input order. One default :class:`MinerConfig` serves every log source; add
:class:`MaskPattern` entries to ``MinerConfig.extra_masks`` for variables the built-in masking
(numbers, IPv4/IPv6 with ports, hosts, hex, UUIDs, MACs, paths, URLs, e-mails, timestamps,
key=value values with digits, sizes and durations with units) does not know.
"""

from vigil.analytics.logtemplates.masking import MaskPattern
from vigil.analytics.logtemplates.miner import Match, MinerConfig, TemplateInfo, TemplateMiner

__all__ = ["MaskPattern", "Match", "MinerConfig", "TemplateInfo", "TemplateMiner"]
