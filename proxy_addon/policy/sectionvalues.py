"""What each rules section says, typed: ``Sections`` has one field per
section (None when the rules do not give it), set by the section's own
parser (``sections`` lists them) and read by name, never by string."""

from __future__ import annotations

from dataclasses import dataclass, field

from .bandwidth import BandwidthRules
from .circumventionrules import CircumventionRules
from .contentrules import DownloadRules, StreamingRules, UploadRules
from .directory import DirectoryRules
from .firstsightrules import FirstSightRules
from .grantrules import GrantRules
from .listsources import ListSource
from .model import DeviceNaming
from .monitoring import Monitoring, Retention
from .noticerules import NoticeRules
from .pacrules import PacRules
from .pagecontent import PageContentRules
from .safesearchrules import SafeSearchRules
from .scoringrules import ScoringRules


@dataclass
class Sections:
    bandwidth: BandwidthRules | None = None
    circumvention: CircumventionRules | None = None
    device_names: DeviceNaming | None = None
    directory: DirectoryRules | None = None
    downloads: DownloadRules | None = None
    first_sight: FirstSightRules | None = None
    grants: GrantRules | None = None
    list_sources: list[ListSource] = field(default_factory=list)
    monitoring: Monitoring | None = None
    notice: NoticeRules | None = None
    pac: PacRules | None = None
    page_content: PageContentRules | None = None
    retention: Retention | None = None
    safe_search: SafeSearchRules | None = None
    scoring: ScoringRules | None = None
    streaming: StreamingRules | None = None
    uploads: UploadRules | None = None
